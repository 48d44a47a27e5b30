/**
 * The job graph as SVG: one box per task (its chained operators, then one chip per subtask,
 * filled by its unit's status and outlined in its checkpoint region's colour), arrows for the edges
 * between tasks (kind, id, and one square per sub-partition: green available, red unavailable).
 */
import { h, svg } from './dom';
import type { JobDetails } from './api';

const MIN_BOX_W = 240;
const MAX_BOX_W = 380;
/** Rough width of a character of the graph's fonts (12-13 px sans-serif). */
const CHAR_W = 7.4;
const GAP_X = 200;
const GAP_Y = 36;
const MARGIN = 16;
const HEADER = 30;
const OP_ROW = 20;
const CHIP_W = 34;
const CHIP_H = 20;
const CHIP_GAP = 6;
const CHIPS_PER_ROW = 6;
/** Above this many subtasks a task shows counts instead of chips. */
const MAX_CHIPS = 48;

export const REGION_COLORS = ['#1f77b4', '#e8710a', '#2ca02c', '#9467bd', '#8c564b', '#d6338a', '#0f9fb4', '#a3a317'];
export const STATUS_FILL: Record<string, string> = {
  RUNNING: '#c8e6c9',
  STARTING: '#fff0b3',
  FINISHED: '#cfe3ff',
  FAILED: '#ffcdd2',
  CANCELLED: '#e2e2e2',
  PENDING: '#f4f4f4',
};

const EDGE_NAMES: Record<string, string> = { forward: 'forward', hash: 'keyBy (hash)', rebalance: 'rebalance', broadcast: 'broadcast' };

type Task = NonNullable<JobDetails['graph']>['tasks'][number];

interface Placed {
  task: Task;
  x: number;
  y: number;
  height: number;
}

function boxHeight(task: Task): number {
  const chipRows = task.parallelism > MAX_CHIPS ? 1 : Math.ceil(task.parallelism / CHIPS_PER_ROW);
  return HEADER + task.operators.length * OP_ROW + 10 + chipRows * (CHIP_H + CHIP_GAP) + 8;
}

/** Subtask id -> region index, unit and its status. */
function subtaskInfo(details: JobDetails) {
  const region = new Map<string, number>();
  details.regions.forEach((r, i) => r.subtasks.forEach((s) => region.set(s, i)));
  const unit = new Map<string, JobDetails['units'][number]>();
  for (const u of details.units) for (const s of u.subtasks) unit.set(s, u);
  return { region, unit };
}

export function renderGraph(details: JobDetails & { graph: NonNullable<JobDetails['graph']> }): HTMLElement {
  const { graph } = details;
  // Wide enough for the longest task title (with its parallelism) and operator id.
  const BOX_W = Math.min(
    MAX_BOX_W,
    Math.max(MIN_BOX_W, ...graph.tasks.map((t) => Math.max(`task ${t.id}`.length * CHAR_W + 110, ...t.operators.map((o) => o.id.length * CHAR_W + 150)))),
  );
  // Layers: a task goes one column right of its rightmost producer (tasks come in topological order).
  const layer = new Map<string, number>();
  for (const t of graph.tasks) {
    const ins = graph.edges.filter((e) => e.to === t.id).map((e) => (layer.get(e.from) ?? 0) + 1);
    layer.set(t.id, Math.max(0, ...ins));
  }
  const columns: Task[][] = [];
  for (const t of graph.tasks) (columns[layer.get(t.id)!] ??= []).push(t);
  const columnHeight = (col: Task[]) => col.reduce((sum, t) => sum + boxHeight(t), 0) + GAP_Y * (col.length - 1);
  const height = Math.max(...columns.map(columnHeight)) + 2 * MARGIN + 20;
  const width = columns.length * BOX_W + (columns.length - 1) * GAP_X + 2 * MARGIN;

  const placed = new Map<string, Placed>();
  columns.forEach((col, c) => {
    let y = MARGIN + (height - 2 * MARGIN - 20 - columnHeight(col)) / 2;
    for (const task of col) {
      const boxH = boxHeight(task);
      placed.set(task.id, { task, x: MARGIN + c * (BOX_W + GAP_X), y, height: boxH });
      y += boxH + GAP_Y;
    }
  });

  const info = subtaskInfo(details);
  const available = new Map<string, boolean>();
  for (const a of details.availability) {
    if (typeof a.edgeId === 'string' && typeof a.consumer === 'number') available.set(`${a.edgeId}/${a.consumer}`, a.available !== false);
  }

  const root = svg('svg', { class: 'graph', 'data-testid': 'graph', width, height, viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': `graph of job ${details.job.jobId}` });
  root.appendChild(
    svg('defs', null, svg('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 8, markerHeight: 8, orient: 'auto-start-reverse' }, svg('path', { d: 'M 0 0 L 10 5 L 0 10 z', fill: '#5b6b7b' }))),
  );

  // Edges first, under the boxes.
  for (const e of graph.edges) {
    const from = placed.get(e.from);
    const to = placed.get(e.to);
    if (!from || !to) continue;
    const inputs = graph.edges.filter((x) => x.to === e.to);
    const slot = inputs.indexOf(e) + 1;
    const x1 = from.x + BOX_W;
    const y1 = from.y + from.height / 2;
    const x2 = to.x - 2;
    const y2 = to.y + (to.height * slot) / (inputs.length + 1);
    const bend = Math.max(60, (x2 - x1) / 2);
    const unavailable = Array.from({ length: e.subPartitions }, (_, j) => available.get(`${e.id}/${j}`) === false).filter(Boolean).length;
    const g = svg('g', { class: `edge kind-${e.kind}`, 'data-edge': e.id });
    g.appendChild(svg('path', { d: `M ${x1} ${y1} C ${x1 + bend} ${y1}, ${x2 - bend} ${y2}, ${x2} ${y2}`, class: 'edge-line', 'marker-end': 'url(#arrow)' }));
    const mx = (x1 + x2) / 2;
    const my = (y1 + y2) / 2;
    const squares = Math.min(e.subPartitions, 16);
    const labelW = Math.max(150, squares * 12 + 20);
    g.appendChild(svg('rect', { x: mx - labelW / 2, y: my - 34, width: labelW, height: 62, rx: 6, class: 'edge-label-bg' }));
    g.appendChild(svg('text', { x: mx, y: my - 17, class: 'edge-kind', 'text-anchor': 'middle' }, EDGE_NAMES[e.kind] ?? e.kind));
    g.appendChild(
      svg('text', { x: mx, y: my, class: 'edge-meta', 'text-anchor': 'middle' }, `${e.id} · ${e.subPartitions} sub-partition${e.subPartitions === 1 ? '' : 's'}${e.input > 0 ? ` · input ${e.input}` : ''}`),
    );
    const sx = mx - (squares * 12 - 2) / 2;
    for (let j = 0; j < squares; j++) {
      const down = available.get(`${e.id}/${j}`) === false;
      g.appendChild(
        svg('rect', { x: sx + j * 12, y: my + 8, width: 10, height: 10, rx: 2, class: down ? 'sp sp-down' : 'sp sp-up', 'data-subpartition': `${e.id}/${j}` }, svg('title', null, `sub-partition ${e.id}/${j} → ${e.to}#${j}: ${down ? 'UNAVAILABLE' : 'available'}`)),
      );
    }
    if (e.subPartitions > squares) g.appendChild(svg('text', { x: sx + squares * 12 + 2, y: my + 17, class: 'edge-meta' }, `+${e.subPartitions - squares}`));
    if (unavailable > 0) g.appendChild(svg('title', null, `${unavailable} of ${e.subPartitions} sub-partitions unavailable`));
    root.appendChild(g);
  }

  for (const { task, x, y, height: boxH } of placed.values()) {
    const g = svg('g', { class: 'task', 'data-task': task.id });
    g.appendChild(svg('rect', { x, y, width: BOX_W, height: boxH, rx: 8, class: 'task-box' }));
    g.appendChild(svg('rect', { x, y, width: BOX_W, height: HEADER - 4, rx: 8, class: 'task-head' }));
    g.appendChild(svg('rect', { x, y: y + HEADER - 12, width: BOX_W, height: 8, class: 'task-head' }));
    g.appendChild(svg('text', { x: x + 10, y: y + 18, class: 'task-title' }, `task ${task.id}`));
    g.appendChild(svg('text', { x: x + BOX_W - 10, y: y + 18, class: 'task-par', 'text-anchor': 'end' }, `parallelism ${task.parallelism}`));
    task.operators.forEach((op, i) => {
      const oy = y + HEADER + 12 + i * OP_ROW;
      g.appendChild(svg('text', { x: x + 12, y: oy, class: 'op-kind' }, i === 0 ? op.kind : `↳ ${op.kind}`));
      g.appendChild(svg('text', { x: x + 84, y: oy, class: 'op-id' }, op.id, i > 0 ? svg('tspan', { class: 'op-chained' }, '  chained') : null));
    });
    const cy = y + HEADER + task.operators.length * OP_ROW + 10;
    if (task.parallelism > MAX_CHIPS) {
      const counts = new Map<string, number>();
      for (let i = 0; i < task.parallelism; i++) {
        const s = info.unit.get(`${task.id}#${i}`)?.status ?? 'PENDING';
        counts.set(s, (counts.get(s) ?? 0) + 1);
      }
      g.appendChild(svg('text', { x: x + 12, y: cy + 14, class: 'op-id' }, [...counts].map(([s, n]) => `${n} ${s.toLowerCase()}`).join(', ')));
    } else {
      for (let i = 0; i < task.parallelism; i++) {
        const id = `${task.id}#${i}`;
        const unit = info.unit.get(id);
        const region = info.region.get(id);
        const status = unit?.status ?? 'PENDING';
        const col = i % CHIPS_PER_ROW;
        const row = Math.floor(i / CHIPS_PER_ROW);
        const chipX = x + 12 + col * (CHIP_W + CHIP_GAP);
        const chipY = cy + row * (CHIP_H + CHIP_GAP);
        const regionId = region !== undefined ? details.regions[region]!.id : '–';
        g.appendChild(
          svg(
            'g',
            { class: 'chip', 'data-subtask': id, 'data-status': status },
            svg('rect', { x: chipX, y: chipY, width: CHIP_W, height: CHIP_H, rx: 4, fill: STATUS_FILL[status] ?? '#fff', stroke: region !== undefined ? REGION_COLORS[region % REGION_COLORS.length] : '#999', 'stroke-width': 2 }),
            svg('text', { x: chipX + CHIP_W / 2, y: chipY + 14, 'text-anchor': 'middle', class: 'chip-text' }, `#${i}`),
            svg('title', null, `${id} · unit ${unit?.unitId ?? '–'} · attempt ${unit?.attempt ?? 0} · ${status} · region ${regionId}`),
          ),
        );
      }
    }
    root.appendChild(g);
  }

  const legend = h(
    'div',
    { class: 'legend' },
    h('span', { class: 'legend-title' }, 'subtasks:'),
    Object.keys(STATUS_FILL).map((s) => h('span', { class: 'legend-item' }, h('i', { class: `swatch fill-${s.toLowerCase()}` }), s.toLowerCase())),
    h('span', { class: 'legend-title' }, 'regions (outline):'),
    details.regions.slice(0, 16).map((r, i) =>
      h('span', { class: 'legend-item', 'data-region': r.id }, h('i', { class: `swatch outline rg-${i % REGION_COLORS.length}` }), `${r.id} (${r.subtasks.length})`),
    ),
    details.regions.length > 16 ? h('span', { class: 'legend-item' }, `+${details.regions.length - 16} more`) : null,
    h('span', { class: 'legend-title' }, 'sub-partitions:'),
    h('span', { class: 'legend-item' }, h('i', { class: 'swatch sp-up' }), 'available'),
    h('span', { class: 'legend-item' }, h('i', { class: 'swatch sp-down' }), 'unavailable'),
  );
  return h('div', { class: 'graph-wrap' }, h('div', { class: 'graph-scroll' }, root), legend);
}
