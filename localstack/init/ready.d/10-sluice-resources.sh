#!/bin/bash
# LocalStack ready hook: the DynamoDB table and the S3 bucket Sluice's runtime uses
# (SLUICE_TABLE / SLUICE_BUCKET, the same defaults as lib/config.ts). Idempotent.
set -euo pipefail

TABLE="${SLUICE_TABLE:-sluice-metadata}"
BUCKET="${SLUICE_BUCKET:-sluice-data}"

if ! awslocal dynamodb describe-table --table-name "$TABLE" >/dev/null 2>&1; then
  awslocal dynamodb create-table \
    --table-name "$TABLE" \
    --attribute-definitions AttributeName=pk,AttributeType=S AttributeName=sk,AttributeType=S \
    --key-schema AttributeName=pk,KeyType=HASH AttributeName=sk,KeyType=RANGE \
    --billing-mode PAY_PER_REQUEST >/dev/null
  awslocal dynamodb wait table-exists --table-name "$TABLE"
  awslocal dynamodb update-continuous-backups --table-name "$TABLE" \
    --point-in-time-recovery-specification PointInTimeRecoveryEnabled=true >/dev/null || true
  echo "sluice: created DynamoDB table $TABLE"
fi

if ! awslocal s3api head-bucket --bucket "$BUCKET" >/dev/null 2>&1; then
  awslocal s3api create-bucket --bucket "$BUCKET" >/dev/null
  awslocal s3api put-bucket-lifecycle-configuration --bucket "$BUCKET" --lifecycle-configuration '{
    "Rules": [
      { "ID": "expire-checkpoints", "Filter": { "Prefix": "checkpoints/" }, "Status": "Enabled", "Expiration": { "Days": 30 } },
      { "ID": "expire-staging", "Filter": { "Prefix": "staging/" }, "Status": "Enabled", "Expiration": { "Days": 1 } },
      { "ID": "abort-incomplete-uploads", "Filter": {}, "Status": "Enabled", "AbortIncompleteMultipartUpload": { "DaysAfterInitiation": 1 } }
    ]
  }' >/dev/null
  echo "sluice: created S3 bucket $BUCKET"
fi
