/** The jobs this installation can run, by name. Add your own definitions here. */
import { JobRegistry } from '../../lib/api/registry';
import { demoJob } from './demo';
import { ingestJob } from './ingest';
import { recommendationJoinJob } from './recommendation-join';
import { kinesisIngestJob } from './stream-ingest';
import { kafkaIngestJob, kafkaRecommendationJoinJob } from './kafka-jobs';

export const jobRegistry = new JobRegistry([demoJob, ingestJob, recommendationJoinJob, kinesisIngestJob, kafkaRecommendationJoinJob, kafkaIngestJob]);
