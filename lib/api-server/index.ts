export { serveProxy, toProxyEvent, MAX_BODY_BYTES, type ProxyServer, type ProxyHandler } from './http';
export { startLocalApi, LocalSchedulerPort, type LocalApi, type LocalApiOptions } from './local-api';
