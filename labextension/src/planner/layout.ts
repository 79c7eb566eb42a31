/**
 * A small layered layout of the plan's DAG, left to right: each task sits in the column given by the
 * longest chain of dependencies before it, and tasks within a column are ordered to cut edge crossings
 * (barycentre sweeps). Pure: no DOM; the graph component draws the result as SVG.
 */

/** What the layout needs of a task. */
export interface GraphTask {
  id: string;
  depends_on: readonly string[];
}

export interface LayoutOptions {
  nodeWidth: number;
  nodeHeight: number;
  /** Horizontal space between columns (layers). */
  layerGap: number;
  /** Vertical space between tasks of a column. */
  rowGap: number;
  margin: number;
}

export const DEFAULT_LAYOUT: LayoutOptions = {
  nodeWidth: 190,
  nodeHeight: 56,
  layerGap: 56,
  rowGap: 18,
  margin: 12
};

export interface NodeBox {
  id: string;
  layer: number;
  /** Position within its layer, from the top. */
  order: number;
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface EdgePath {
  /** The dependency... */
  from: string;
  /** ...and the task that needs it. */
  to: string;
  critical: boolean;
  /** SVG path data. */
  d: string;
}

export interface GraphLayout {
  nodes: NodeBox[];
  edges: EdgePath[];
  /** Task ids by layer, each in its final order. */
  layers: string[][];
  width: number;
  height: number;
}

/** Sweeps of the ordering heuristic (each one down and up the layers). */
const SWEEPS = 4;

/**
 * Longest-path layering: a task without (known) dependencies is in layer 0, any other one layer after
 * its deepest dependency. Unknown ids are ignored, and so is the edge that closes a cycle, so a plan
 * being edited into an invalid shape still lays out.
 */
export function assignLayers(tasks: readonly GraphTask[]): Map<string, number> {
  const byId = new Map(tasks.map(t => [t.id, t]));
  const layer = new Map<string, number>();
  const visiting = new Set<string>();
  const visit = (id: string): number => {
    const known = layer.get(id);
    if (known !== undefined) {
      return known;
    }
    visiting.add(id);
    let depth = 0;
    for (const dep of byId.get(id)?.depends_on ?? []) {
      if (byId.has(dep) && !visiting.has(dep)) {
        depth = Math.max(depth, visit(dep) + 1);
      }
    }
    visiting.delete(id);
    layer.set(id, depth);
    return depth;
  };
  tasks.forEach(t => visit(t.id));
  return layer;
}

/** The dependency edges between known tasks, as [from, to] (from = the dependency). */
export function dependencyEdges(tasks: readonly GraphTask[]): [string, string][] {
  const ids = new Set(tasks.map(t => t.id));
  const edges: [string, string][] = [];
  for (const task of tasks) {
    for (const dep of new Set(task.depends_on)) {
      if (ids.has(dep) && dep !== task.id) {
        edges.push([dep, task.id]);
      }
    }
  }
  return edges;
}

/**
 * Crossings of edges that join the same pair of layers (edges spanning more layers are counted by their
 * ends, an approximation that is enough to compare two orderings).
 */
export function countCrossings(layers: readonly string[][], edges: readonly [string, string][]): number {
  const where = positions(layers);
  let crossings = 0;
  for (let i = 0; i < edges.length; i++) {
    const [a, b] = edges[i].map(id => where.get(id)!);
    for (let j = i + 1; j < edges.length; j++) {
      const [c, d] = edges[j].map(id => where.get(id)!);
      if (a.layer === c.layer && b.layer === d.layer && (a.slot - c.slot) * (b.slot - d.slot) < 0) {
        crossings++;
      }
    }
  }
  return crossings;
}

/**
 * Orders each layer by the mean position of the task's neighbours (dependencies on the way down,
 * dependents on the way up), keeping the ordering with the fewest crossings. Starts from the tasks'
 * own order, so a plan without crossings keeps the order the model wrote it in.
 */
export function orderLayers(layers: readonly string[][], edges: readonly [string, string][]): string[][] {
  const before = new Map<string, string[]>();
  const after = new Map<string, string[]>();
  for (const [from, to] of edges) {
    before.set(to, [...(before.get(to) ?? []), from]);
    after.set(from, [...(after.get(from) ?? []), to]);
  }
  let current = layers.map(l => [...l]);
  let best = current.map(l => [...l]);
  let fewest = countCrossings(best, edges);
  const reorder = (index: number, neighbours: Map<string, string[]>) => {
    const where = positions(current);
    const layer = current[index];
    const centre = new Map<string, number>();
    layer.forEach(id => {
      const slots = (neighbours.get(id) ?? []).map(n => where.get(n)!.slot);
      centre.set(id, slots.length ? slots.reduce((s, v) => s + v, 0) / slots.length : where.get(id)!.slot);
    });
    // Array.prototype.sort is stable: ties keep their current order.
    current[index] = [...layer].sort((p, q) => centre.get(p)! - centre.get(q)!);
  };
  for (let sweep = 0; sweep < SWEEPS && fewest > 0; sweep++) {
    for (let i = 1; i < current.length; i++) {
      reorder(i, before);
    }
    for (let i = current.length - 2; i >= 0; i--) {
      reorder(i, after);
    }
    const crossings = countCrossings(current, edges);
    if (crossings < fewest) {
      fewest = crossings;
      best = current.map(l => [...l]);
    }
  }
  return best;
}

/** Pairs of consecutive tasks on the critical path, as `from>to` keys. */
export function criticalEdgeKeys(criticalPath: readonly string[]): Set<string> {
  const keys = new Set<string>();
  for (let i = 1; i < criticalPath.length; i++) {
    keys.add(edgeKey(criticalPath[i - 1], criticalPath[i]));
  }
  return keys;
}

export function edgeKey(from: string, to: string): string {
  return `${from}>${to}`;
}

/** Lays the DAG out left to right: boxes for the tasks, curves for the dependencies. */
export function layoutGraph(
  tasks: readonly GraphTask[],
  criticalPath: readonly string[] = [],
  options: LayoutOptions = DEFAULT_LAYOUT
): GraphLayout {
  const { nodeWidth, nodeHeight, layerGap, rowGap, margin } = options;
  const layerOf = assignLayers(tasks);
  const edges = dependencyEdges(tasks).filter(([from, to]) => layerOf.get(from)! < layerOf.get(to)!);
  const count = tasks.length ? Math.max(...layerOf.values()) + 1 : 0;
  const initial: string[][] = Array.from({ length: count }, () => []);
  tasks.forEach(t => initial[layerOf.get(t.id)!].push(t.id));
  const layers = orderLayers(initial, edges);

  const tallest = Math.max(0, ...layers.map(l => l.length));
  const nodes: NodeBox[] = [];
  const boxes = new Map<string, NodeBox>();
  layers.forEach((layer, index) => {
    const offset = ((tallest - layer.length) * (nodeHeight + rowGap)) / 2; // centre each column
    layer.forEach((id, order) => {
      const box: NodeBox = {
        id,
        layer: index,
        order,
        x: margin + index * (nodeWidth + layerGap),
        y: margin + offset + order * (nodeHeight + rowGap),
        width: nodeWidth,
        height: nodeHeight
      };
      nodes.push(box);
      boxes.set(id, box);
    });
  });

  const critical = criticalEdgeKeys(criticalPath);
  const paths: EdgePath[] = edges.map(([from, to]) => {
    const a = boxes.get(from)!;
    const b = boxes.get(to)!;
    const x1 = a.x + a.width;
    const y1 = a.y + a.height / 2;
    const x2 = b.x;
    const y2 = b.y + b.height / 2;
    const bend = Math.max(layerGap / 2, (x2 - x1) / 3);
    return {
      from,
      to,
      critical: critical.has(edgeKey(from, to)),
      d: `M${x1},${y1} C${x1 + bend},${y1} ${x2 - bend},${y2} ${x2},${y2}`
    };
  });

  const width = count ? 2 * margin + count * nodeWidth + (count - 1) * layerGap : 0;
  const height = tallest ? 2 * margin + tallest * nodeHeight + (tallest - 1) * rowGap : 0;
  return { nodes, edges: paths, layers, width, height };
}

/** Each task's layer and centred slot (index minus the middle of its layer). */
function positions(layers: readonly string[][]): Map<string, { layer: number; slot: number }> {
  const where = new Map<string, { layer: number; slot: number }>();
  layers.forEach((layer, index) => {
    layer.forEach((id, order) => where.set(id, { layer: index, slot: order - (layer.length - 1) / 2 }));
  });
  return where;
}
