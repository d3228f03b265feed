//! The DAGs folder: every `*.toml` file below it, parsed; good files never wait on bad ones.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Arc,
};

use super::{Dag, DagFileError, Problem, parse_dag_file};

/// The DAGs of a folder and the import errors of the files that did not load.
#[derive(Debug, Default)]
pub struct DagBag {
    pub folder: PathBuf,
    pub dags: BTreeMap<String, Arc<Dag>>,
    pub errors: Vec<DagFileError>,
}

impl DagBag {
    /// Loads every `*.toml` file below `folder` (hidden files and folders are skipped).
    pub fn load(folder: &Path) -> std::io::Result<Self> {
        let mut files = Vec::new();
        collect_toml_files(folder, &mut files).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("cannot read the DAGs folder {}: {e}", folder.display()),
            )
        })?;
        files.sort();
        let mut bag = Self {
            folder: folder.to_owned(),
            ..Self::default()
        };
        for file in files {
            bag.add_file(&file);
        }
        Ok(bag)
    }

    fn add_file(&mut self, file: &Path) {
        let source = match std::fs::read_to_string(file) {
            Ok(source) => source,
            Err(e) => {
                return self
                    .errors
                    .push(file_error(file, format!("cannot read the file: {e}")));
            }
        };
        match parse_dag_file(file, &source) {
            Ok(dag) => match self.dags.get(&dag.id) {
                Some(other) => {
                    let message = format!(
                        "dag id {:?} is already defined in {}",
                        dag.id,
                        other.file.display()
                    );
                    self.errors.push(file_error(file, message));
                }
                None => {
                    self.dags.insert(dag.id.clone(), Arc::new(dag));
                }
            },
            Err(error) => self.errors.push(error),
        }
    }

    pub fn get(&self, dag_id: &str) -> Option<Arc<Dag>> {
        self.dags.get(dag_id).cloned()
    }
}

fn file_error(file: &Path, message: String) -> DagFileError {
    DagFileError {
        file: file.to_owned(),
        problems: vec![Problem {
            line: None,
            column: None,
            field: None,
            message,
        }],
    }
}

fn collect_toml_files(folder: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(folder)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        if entry.file_type()?.is_dir() {
            collect_toml_files(&path, files)?;
        } else if path.extension().is_some_and(|ext| ext == "toml") {
            files.push(path);
        }
    }
    Ok(())
}
