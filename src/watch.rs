//! File watching for live reload.
//!
//! Directories are watched rather than files: editors save by renaming a new file over the
//! old one, and Kubernetes updates ConfigMaps and Secrets by swapping a `..data` symlink, both
//! of which a watch on the file itself would miss after the first change.

use std::collections::HashSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

/// Watches the directories holding `files`. The receiver gets a message whenever an entry
/// with one of the files' names (or a Kubernetes `..data` swap) changes; the watcher must be
/// kept alive for as long as messages are wanted.
pub fn watch(files: &[PathBuf]) -> notify::Result<(RecommendedWatcher, mpsc::Receiver<()>)> {
    let (tx, rx) = mpsc::channel(1);
    let names: HashSet<OsString> = files
        .iter()
        .filter_map(|f| f.file_name().map(Into::into))
        .collect();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if event.kind.is_access() {
            return;
        }
        let relevant = event.paths.iter().any(|p| {
            p.file_name()
                .is_some_and(|n| names.contains(n) || n.to_string_lossy().starts_with(".."))
        });
        if relevant {
            // A full channel already holds a pending notification; that is enough.
            let _ = tx.try_send(());
        }
    })?;
    let dirs: HashSet<PathBuf> = files.iter().map(|f| dir_of(f)).collect();
    for dir in dirs {
        watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    }
    Ok((watcher, rx))
}

fn dir_of(file: &Path) -> PathBuf {
    match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}
