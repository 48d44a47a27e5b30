export * from './channels';
export * from './blob-store';
export * from './metadata-store';
export * from './clock';
