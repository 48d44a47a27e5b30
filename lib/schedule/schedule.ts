/**
 * Checkpoint schedules (see model.ts for the rules they follow): the model, cron parsing, input
 * checking, fire times, and the EventBridge Scheduler expression, one module each.
 */
export * from './model';
export * from './cron';
export * from './parse';
export * from './next-fire';
export * from './expressions';
