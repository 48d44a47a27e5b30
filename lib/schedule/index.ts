export * from './schedule';
export * from './local-scheduler';
export { wallClock, fromWallClock, zoneOffsetMs, isValidTimeZone, formatInZone, type WallClock } from './time-zone';
