//! Hot reload: watches the layouts directory and, within a moment of a file
//! being written, added or removed, reloads the store and hands every room
//! the layouts whose content changed. A file that no longer parses is
//! reported and its last good version stays in force. Whoever starts the
//! watch says what a changed layout means (the server hands it to the rooms).

use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use super::file::LayoutFile;
use super::library::LayoutStore;

/// Editors write a file in several steps; wait for them to finish.
const SETTLE: Duration = Duration::from_millis(150);

/// A running watch; dropping it stops watching.
#[must_use = "dropping the watch stops hot reload"]
pub struct LayoutWatch {
    _watcher: notify::RecommendedWatcher,
}

/// Starts watching `store`'s directory; `changed` hears each layout whose
/// content changed, by name. Returns None (and logs why) when there is no
/// directory to watch.
pub fn watch(
    store: LayoutStore,
    changed: impl Fn(&str, &std::sync::Arc<LayoutFile>) + Send + 'static,
) -> Option<LayoutWatch> {
    let dir = store.dir().to_path_buf();
    if !dir.is_dir() {
        tracing::info!(dir = %dir.display(), "no layouts directory: built-in layouts only, no hot reload");
        return None;
    }
    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    let mut watcher =
        match notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if event.is_ok_and(|e| !e.kind.is_access()) {
                let _ = tx.send(());
            }
        }) {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!("cannot watch layouts: {e}; edits apply after a restart");
                return None;
            }
        };
    if let Err(e) = watcher.watch(&dir, RecursiveMode::NonRecursive) {
        tracing::warn!(dir = %dir.display(), "cannot watch layouts: {e}; edits apply after a restart");
        return None;
    }
    tokio::spawn(async move {
        while rx.recv().await.is_some() {
            tokio::time::sleep(SETTLE).await;
            while rx.try_recv().is_ok() {}
            reload(&store, &changed);
        }
    });
    tracing::info!(dir = %dir.display(), "watching layouts for changes");
    Some(LayoutWatch { _watcher: watcher })
}

fn reload(store: &LayoutStore, changed: &impl Fn(&str, &std::sync::Arc<LayoutFile>)) {
    let before = store.library();
    let after = match store.reload() {
        Ok(lib) => lib,
        Err(e) => {
            tracing::warn!("reloading layouts: {e}");
            return;
        }
    };
    for (name, error) in after.errors() {
        if before.errors().get(name) != Some(error) {
            tracing::warn!(layout = %name, "layout file rejected, previous version stays: {error}");
        }
    }
    for name in after.names() {
        let (Some(new), old) = (after.get(&name), before.get(&name)) else {
            continue;
        };
        if old.as_deref() != Some(&*new) {
            tracing::info!(layout = %name, "layout reloaded");
            changed(&name, &new);
        }
    }
}
