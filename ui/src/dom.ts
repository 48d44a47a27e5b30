/** Building DOM nodes without innerHTML: every text is a text node, so nothing from the API is parsed as markup. */

export type Child = Node | string | number | null | undefined | false | Child[];
type Listener = (event: Event) => void;
export type Attrs = { [name: string]: string | number | boolean | Listener | null | undefined };

function append(parent: Node, children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(parent, c);
    else parent.appendChild(typeof c === 'object' ? c : document.createTextNode(String(c)));
  }
}

function setAttrs(el: Element, attrs: Attrs | null | undefined): void {
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    if (typeof value === 'function') el.addEventListener(name.replace(/^on/, ''), value);
    else if (value === true) el.setAttribute(name, '');
    else el.setAttribute(name, String(value));
  }
}

/** An HTML element: h('td', { class: 'num' }, 42). Attributes `on<event>` with a function add a listener. */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs?: Attrs | null, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

const SVG_NS = 'http://www.w3.org/2000/svg';

/** An SVG element. */
export function svg<K extends keyof SVGElementTagNameMap>(tag: K, attrs?: Attrs | null, ...children: Child[]): SVGElementTagNameMap[K] {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

/** Replaces an element's children. */
export function replace(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, children);
}

/** A table with a header row; `rows` are arrays of cells (a cell may be a <td> already). */
export function table(testid: string, head: string[], rows: Child[][], options: { numeric?: number[]; empty?: string } = {}): HTMLElement {
  const numeric = new Set(options.numeric ?? []);
  if (rows.length === 0) return h('p', { class: 'muted', 'data-testid': testid }, options.empty ?? 'none');
  return h(
    'div',
    { class: 'table-wrap' },
    h(
      'table',
      { 'data-testid': testid },
      h('thead', null, h('tr', null, head.map((c, i) => h('th', numeric.has(i) ? { class: 'num' } : null, c)))),
      h(
        'tbody',
        null,
        rows.map((r) => h('tr', null, r.map((c, i) => (c instanceof HTMLTableCellElement ? c : h('td', numeric.has(i) ? { class: 'num' } : null, c))))),
      ),
    ),
  );
}

/** A coloured status label. */
export function badge(status: string, testid?: string): HTMLElement {
  return h('span', { class: `badge s-${status.toLowerCase().replace(/[^a-z-]/g, '')}`, ...(testid ? { 'data-testid': testid } : {}) }, status);
}
