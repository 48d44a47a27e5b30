/**
 * The job API's routes, shared by the Lambda entry (functions/api/index.ts), the local HTTP
 * server (lib/api-server) and the CDK app (infra/, one API Gateway method and one function per
 * route). No imports: the CDK app reads it without loading the handlers.
 */
export type RouteName = 'submitJob' | 'listJobs' | 'getJob' | 'triggerCheckpoint' | 'listCheckpoints' | 'putSchedule' | 'cancelJob';

export interface RouteSpec {
  name: RouteName;
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** API Gateway resource path. */
  resource: string;
  /** Whether the request carries a JSON body (validated by API Gateway and zod). */
  body: boolean;
  summary: string;
}

export const ROUTES: readonly RouteSpec[] = [
  { name: 'submitJob', method: 'POST', resource: '/jobs', body: true, summary: 'submit a job' },
  { name: 'listJobs', method: 'GET', resource: '/jobs', body: false, summary: 'list jobs' },
  { name: 'getJob', method: 'GET', resource: '/jobs/{id}', body: false, summary: 'a job with its units, regions, availability flags and totals' },
  { name: 'cancelJob', method: 'DELETE', resource: '/jobs/{id}', body: false, summary: 'cancel a job (stops units, deletes queues, keeps checkpoints)' },
  { name: 'triggerCheckpoint', method: 'POST', resource: '/jobs/{id}/checkpoints', body: false, summary: 'trigger a checkpoint now' },
  { name: 'listCheckpoints', method: 'GET', resource: '/jobs/{id}/checkpoints', body: false, summary: 'checkpoint history' },
  { name: 'putSchedule', method: 'PUT', resource: '/jobs/{id}/schedule', body: true, summary: 'change the checkpoint schedule without a restart' },
];

/** The route and path parameters of a request, or undefined (404); `allowed` lists methods for a known path (405). */
export function matchRoute(method: string, path: string): { route: RouteSpec; pathParameters: Record<string, string> } | { allowed: string[] } | undefined {
  const segments = path.replace(/\/+$/, '').split('/').filter(Boolean);
  const allowed: string[] = [];
  for (const route of ROUTES) {
    const pattern = route.resource.split('/').filter(Boolean);
    if (pattern.length !== segments.length) continue;
    const params: Record<string, string> = {};
    let ok = true;
    for (let i = 0; i < pattern.length; i++) {
      const p = pattern[i]!;
      const s = segments[i]!;
      if (p.startsWith('{') && p.endsWith('}')) {
        try {
          params[p.slice(1, -1)] = decodeURIComponent(s);
        } catch {
          ok = false;
        }
      } else if (p !== s) ok = false;
      if (!ok) break;
    }
    if (!ok) continue;
    if (route.method === method.toUpperCase()) return { route, pathParameters: params };
    allowed.push(route.method);
  }
  return allowed.length > 0 ? { allowed } : undefined;
}
