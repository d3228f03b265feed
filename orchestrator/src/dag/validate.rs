//! The task graph of a DAG: duplicate ids, unknown upstreams and cycles, all reported at once.

use std::{
    collections::{HashMap, HashSet},
    ops::Range,
};

use super::{TaskSpec, error::Problems};

/// A task with the positions of its id and upstream entries, for error messages.
pub(crate) struct ParsedTask {
    pub spec: TaskSpec,
    pub id_span: Range<usize>,
    pub upstream_spans: Vec<Range<usize>>,
}

/// Checks the graph and returns the tasks in topological order (file order among equals).
pub(crate) fn validate_graph(tasks: Vec<ParsedTask>, problems: &mut Problems<'_>) -> Vec<TaskSpec> {
    let mut seen = HashSet::new();
    for task in &tasks {
        if !seen.insert(task.spec.id.as_str()) {
            problems.at(
                Some(task.id_span.clone()),
                format!("task {:?}.id", task.spec.id),
                "duplicate task id",
            );
        }
    }
    let split: HashMap<&str, u32> = tasks
        .iter()
        .filter(|t| t.spec.parallelism > 1)
        .map(|t| (t.spec.id.as_str(), t.spec.parallelism))
        .collect();
    for task in &tasks {
        for (upstream, span) in task.spec.upstream.iter().zip(&task.upstream_spans) {
            if let Some(n) = split.get(upstream.as_str()) {
                problems.at(
                    Some(span.clone()),
                    format!("task {:?}.upstream", task.spec.id),
                    format!(
                        "{upstream:?} is a stream split into {n} instances: no task can follow it"
                    ),
                );
            }
        }
    }
    for task in &tasks {
        let mut listed = HashSet::new();
        for (upstream, span) in task.spec.upstream.iter().zip(&task.upstream_spans) {
            let field = format!("task {:?}.upstream", task.spec.id);
            if !listed.insert(upstream.as_str()) {
                problems.at(
                    Some(span.clone()),
                    field,
                    format!("upstream task {upstream:?} is listed twice"),
                );
            } else if upstream == &task.spec.id {
                problems.at(
                    Some(span.clone()),
                    field,
                    "a task cannot be its own upstream",
                );
            } else if !seen.contains(upstream.as_str()) {
                problems.at(
                    Some(span.clone()),
                    field,
                    format!("unknown upstream task {upstream:?}"),
                );
            }
        }
    }
    for task in &tasks {
        check_upstream_reads(task, problems);
    }
    let order = topological_order(&tasks);
    if order.len() < tasks.len() {
        let placed: HashSet<usize> = order.iter().copied().collect();
        let cyclic: Vec<&ParsedTask> = (0..tasks.len())
            .filter(|i| !placed.contains(i))
            .map(|i| &tasks[i])
            .collect();
        let names: Vec<&str> = cyclic.iter().map(|t| t.spec.id.as_str()).collect();
        if let Some(first) = cyclic.first() {
            problems.at(
                Some(first.id_span.clone()),
                format!("task {:?}.upstream", first.spec.id),
                format!("cycle among tasks {}", names.join(", ")),
            );
        }
    }
    let mut by_index: Vec<Option<TaskSpec>> = tasks.into_iter().map(|t| Some(t.spec)).collect();
    let mut ordered = Vec::with_capacity(order.len());
    ordered.extend(order.into_iter().filter_map(|i| by_index[i].take()));
    ordered
}

/// A template sees the results of its task's own upstreams only: `upstream.<id>` inside
/// `{{ }}` or `{% %}` must name one of them (else it renders as undefined at run time).
fn check_upstream_reads(task: &ParsedTask, problems: &mut Problems<'_>) {
    for id in super::template::upstream_reads(&task.spec.config) {
        if !task.spec.upstream.contains(&id) {
            problems.at(
                Some(task.id_span.clone()),
                format!("task {:?}.upstream", task.spec.id),
                format!(
                    "a template reads upstream.{id}, but {id:?} is not an upstream of this task: list it in `upstream`"
                ),
            );
        }
    }
}

/// Kahn's algorithm over task indices; tasks in a cycle (or behind one) are left out. Linear
/// in tasks and edges: each finished task looks at its own downstreams only (a scan of every
/// task per task took seconds at 20,000 tasks).
fn topological_order(tasks: &[ParsedTask]) -> Vec<usize> {
    let index: HashMap<&str, usize> = tasks
        .iter()
        .enumerate()
        .map(|(i, t)| (t.spec.id.as_str(), i))
        .collect();
    let mut waiting_on = vec![0_usize; tasks.len()];
    let mut downstream: Vec<Vec<usize>> = vec![Vec::new(); tasks.len()];
    for (j, task) in tasks.iter().enumerate() {
        for upstream in &task.spec.upstream {
            match index.get(upstream.as_str()) {
                // An upstream listed twice is one edge (and reported as a problem).
                Some(&i) if *upstream != task.spec.id && downstream[i].last() != Some(&j) => {
                    downstream[i].push(j);
                    waiting_on[j] += 1;
                }
                _ => {}
            }
        }
    }
    let mut order = Vec::with_capacity(tasks.len());
    let mut ready: Vec<usize> = (0..tasks.len())
        .filter(|&i| waiting_on[i] == 0)
        .rev()
        .collect();
    while let Some(i) = ready.pop() {
        order.push(i);
        // Later tasks pushed first, so the stack gives file order among equals.
        for &j in downstream[i].iter().rev() {
            waiting_on[j] -= 1;
            if waiting_on[j] == 0 {
                ready.push(j);
            }
        }
    }
    order
}
