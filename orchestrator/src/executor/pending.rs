//! Which tasks of a driven run may have become decidable: every task at the start, then only
//! the direct downstreams of an instance that moved. A release looks at those alone, in
//! topological order, so a finished task costs work in proportion to its downstream count,
//! not to the DAG.

use std::collections::BTreeSet;

use rustc_hash::FxHashMap as HashMap;

use crate::dag::{Dag, base_task_id};

#[derive(Debug)]
pub(super) struct PendingDecisions {
    /// Task id -> positions (in `Dag::tasks`) of the tasks that name it upstream.
    downstream: HashMap<String, Vec<usize>>,
    /// Positions of the tasks to decide at the next release, smallest (topologically first)
    /// first.
    pending: BTreeSet<usize>,
}

impl PendingDecisions {
    /// Every task of `dag` pending.
    pub fn all(dag: &Dag) -> Self {
        let mut downstream: HashMap<String, Vec<usize>> = HashMap::default();
        for (position, task) in dag.tasks.iter().enumerate() {
            for upstream in &task.upstream {
                downstream
                    .entry(upstream.clone())
                    .or_default()
                    .push(position);
            }
        }
        Self {
            downstream,
            pending: (0..dag.tasks.len()).collect(),
        }
    }

    /// The task instance `instance_id` (a task id or `task~i`) moved: its downstreams may
    /// now decide.
    pub fn moved(&mut self, instance_id: &str) {
        if let Some(below) = self.downstream.get(base_task_id(instance_id)) {
            self.pending.extend(below.iter().copied());
        }
    }

    /// The topologically first pending task, taken off the set. Tasks marked while
    /// releasing come later in the order (they are downstream), so one pass cascades.
    pub fn next(&mut self) -> Option<usize> {
        self.pending.pop_first()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dag(source: &str) -> Dag {
        crate::dag::parse_dag_file(std::path::Path::new("t.toml"), source).expect("valid DAG")
    }

    #[test]
    fn only_the_downstreams_of_a_moved_task_come_back_in_order() {
        let dag = dag(r#"
[dag]
id = "d"
[[task]]
id = "a"
operator = "noop"
[[task]]
id = "b"
operator = "noop"
[[task]]
id = "c"
operator = "noop"
upstream = ["a"]
[[task]]
id = "e"
operator = "noop"
upstream = ["a", "b"]
"#);
        let mut pending = PendingDecisions::all(&dag);
        let drain = |pending: &mut PendingDecisions| -> Vec<String> {
            std::iter::from_fn(|| pending.next())
                .map(|position| dag.tasks[position].id.clone())
                .collect()
        };
        assert_eq!(drain(&mut pending).len(), 4);
        assert_eq!(pending.next(), None, "nothing moved, nothing pending");
        pending.moved("b");
        pending.moved("c");
        assert_eq!(
            drain(&mut pending),
            vec!["e"],
            "c has no downstream, b only e"
        );
        pending.moved("a~1");
        let again = drain(&mut pending);
        assert_eq!(
            again.len(),
            2,
            "an instance id marks its task's downstreams"
        );
    }
}
