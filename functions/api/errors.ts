/** Errors the API handlers turn into HTTP 409 (besides JobSpecError 400, UnknownJobError 404). */

/** The request is valid but the job is not in a state that allows it (e.g. cancel a finished job). */
export class ConflictError extends Error {
  override name = 'ConflictError';
}

/** A job that is not running (finished, failed, cancelled): nothing to checkpoint or reschedule. */
export class JobNotRunningError extends ConflictError {
  override name = 'JobNotRunningError';
}

/** The coordinator refused a trigger (a checkpoint of the job is still pending). */
export class CheckpointRefusedError extends ConflictError {
  override name = 'CheckpointRefusedError';
}
