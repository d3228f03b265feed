//! The task graph as server-rendered SVG: tasks in columns by depth (longest path from a
//! root), edges as curves from each upstream to its downstream.

use std::collections::HashMap;

use super::TaskNode;

const NODE_WIDTH: u32 = 170;
const NODE_HEIGHT: u32 = 44;
const GAP_X: u32 = 56;
const GAP_Y: u32 = 14;
const MARGIN: u32 = 8;

#[derive(Debug, Clone)]
pub struct GraphSvg {
    pub width: u32,
    pub height: u32,
    pub nodes: Vec<GraphNode>,
    pub edges: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct GraphNode {
    pub task_id: String,
    pub operator: String,
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
    /// The selected run's state of the task, if any.
    pub state: Option<String>,
    /// The task instance's log in the selected run, if any.
    pub href: Option<String>,
}

impl GraphNode {
    pub fn state_class(&self) -> String {
        self.state
            .as_deref()
            .map(|s| format!("s-{s}"))
            .unwrap_or_default()
    }

    /// The task id cut to fit the box.
    pub fn label(&self) -> String {
        shorten(&self.task_id, 22)
    }

    pub fn text_x(&self) -> u32 {
        self.x + 10
    }

    pub fn text_y(&self) -> u32 {
        self.y + 19
    }

    pub fn op_y(&self) -> u32 {
        self.y + 34
    }
}

fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let cut: String = text.chars().take(max - 1).collect();
        format!("{cut}…")
    }
}

/// Lays out `tasks` (topological order); `state_of` and `href_of` colour and link the nodes.
pub(super) fn layout(
    tasks: &[TaskNode],
    state_of: impl Fn(&str) -> Option<String>,
    href_of: impl Fn(&str) -> Option<String>,
) -> GraphSvg {
    let mut depth: HashMap<&str, u32> = HashMap::new();
    for task in tasks {
        let d = task
            .upstream
            .iter()
            .filter_map(|u| depth.get(u.as_str()))
            .map(|d| d + 1)
            .max()
            .unwrap_or(0);
        depth.insert(&task.task_id, d);
    }
    let mut rows_in_column: HashMap<u32, u32> = HashMap::new();
    let mut position: HashMap<&str, (u32, u32)> = HashMap::new();
    let mut nodes = Vec::with_capacity(tasks.len());
    for task in tasks {
        let column = depth[task.task_id.as_str()];
        let row = rows_in_column.entry(column).or_insert(0);
        let (x, y) = (
            MARGIN + column * (NODE_WIDTH + GAP_X),
            MARGIN + *row * (NODE_HEIGHT + GAP_Y),
        );
        *row += 1;
        position.insert(&task.task_id, (x, y));
        nodes.push(GraphNode {
            task_id: task.task_id.clone(),
            operator: task.operator.clone(),
            x,
            y,
            width: NODE_WIDTH,
            height: NODE_HEIGHT,
            state: state_of(&task.task_id),
            href: href_of(&task.task_id),
        });
    }
    let edges = tasks
        .iter()
        .flat_map(|task| {
            let (tx, ty) = position[task.task_id.as_str()];
            let position = &position;
            task.upstream.iter().filter_map(move |u| {
                let (ux, uy) = *position.get(u.as_str())?;
                let (x1, y1) = (ux + NODE_WIDTH, uy + NODE_HEIGHT / 2);
                let (x2, y2) = (tx - 2, ty + NODE_HEIGHT / 2);
                let mid = (x1 + x2) / 2;
                Some(format!("M{x1},{y1} C{mid},{y1} {mid},{y2} {x2},{y2}"))
            })
        })
        .collect();
    let columns = depth.values().max().map_or(0, |d| d + 1);
    let rows = rows_in_column.values().max().copied().unwrap_or(0);
    GraphSvg {
        width: 2 * MARGIN + columns * NODE_WIDTH + columns.saturating_sub(1) * GAP_X,
        height: 2 * MARGIN + rows * NODE_HEIGHT + rows.saturating_sub(1) * GAP_Y,
        nodes,
        edges,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: &str, upstream: &[&str]) -> TaskNode {
        TaskNode {
            task_id: id.into(),
            operator: "noop".into(),
            upstream: upstream.iter().map(|s| s.to_string()).collect(),
            trigger_rule: "all_success".into(),
            retries: 0,
        }
    }

    #[test]
    fn tasks_go_one_column_right_of_their_deepest_upstream() {
        let tasks = [
            task("a", &[]),
            task("b", &["a"]),
            task("c", &["a"]),
            task("d", &["b", "c"]),
        ];
        let graph = layout(&tasks, |_| None, |_| None);
        let x: Vec<u32> = graph.nodes.iter().map(|n| n.x).collect();
        assert_eq!(x[1], x[2]);
        assert!(x[0] < x[1] && x[1] < x[3]);
        assert_ne!(graph.nodes[1].y, graph.nodes[2].y);
        assert_eq!(graph.edges.len(), 4);
        assert!(graph.width >= x[3] + NODE_WIDTH);
    }
}
