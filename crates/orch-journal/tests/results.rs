//! The results file: stores sharing one file keep the results stored last, the file is
//! rewritten before it grows past a bound, and no store's result is lost to another's
//! rewrite.

#![cfg(unix)] // stores lock and rewrite the file only where files have an identity
#![allow(clippy::unwrap_used)] // in tests, a failed unwrap is a failed test

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;

use orch_journal::ResultFile;
use proptest::prelude::*;
use serde_json::{Value, json};

/// What a store does next.
#[derive(Clone, Debug)]
enum Step {
    /// Store `value` under `key` through store `store`.
    Put { store: usize, key: u128, value: u32 },
    /// Drop store `store` and open the file again in its place.
    Reopen { store: usize },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => (0..2usize, 0..12u128, any::<u32>())
            .prop_map(|(store, key, value)| Step::Put { store, key, value }),
        1 => (0..2usize).prop_map(|store| Step::Reopen { store }),
    ]
}

/// The results a file keeps, written from the docs: the `capacity` keys stored last, each
/// with the value stored last under it, in the order they were stored.
fn model(puts: &[(u128, Value)], capacity: usize) -> Vec<(u128, Value)> {
    let mut kept: Vec<(u128, Value)> = Vec::new();
    for (key, value) in puts {
        kept.retain(|(k, _)| k != key);
        kept.push((*key, value.clone()));
    }
    let forget = kept.len().saturating_sub(capacity);
    kept.drain(..forget);
    kept
}

fn lines_in(path: &Path) -> usize {
    std::fs::read_to_string(path).unwrap().lines().count()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Two stores on one file, put and reopened in any order: a store opened at any
    /// moment holds exactly what the model keeps; a store never holds more than its
    /// capacity, nor a value nobody stored under that key; and the file never holds more
    /// than twice the lines each store may let it hold.
    #[test]
    fn stores_sharing_a_file_keep_the_results_stored_last(
        // Past 32, a store's bound on the file's lines is twice its capacity, not 64.
        capacity in 1..48usize,
        steps in prop::collection::vec(step(), 1..400),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.cache");
        let open = || ResultFile::open_with_capacity(&path, capacity).unwrap();
        let mut stores = [open(), open()];
        let mut puts: Vec<(u128, Value)> = Vec::new();
        // A store may let the file hold twice its capacity of lines, and at least 64.
        let most_lines = 2 * (2 * capacity).max(64);
        for step in steps {
            match step {
                Step::Put { store, key, value } => {
                    stores[store].put(key, json!(value)).unwrap();
                    puts.push((key, json!(value)));
                    prop_assert_eq!(stores[store].get(key), Some(json!(value)));
                }
                Step::Reopen { store } => stores[store] = open(),
            }
            let fresh = open();
            let kept = model(&puts, capacity);
            prop_assert_eq!(fresh.len(), kept.len());
            for (key, value) in &kept {
                prop_assert_eq!(fresh.get(*key), Some(value.clone()), "key {}", key);
            }
            for store in &stores {
                prop_assert!(store.len() <= capacity);
                for key in 0..12 {
                    if let Some(value) = store.get(key) {
                        prop_assert!(puts.contains(&(key, value)), "key {} never held that", key);
                    }
                }
            }
            prop_assert!(lines_in(&path) <= most_lines, "{} lines", lines_in(&path));
        }
    }
}

/// One store alone: the file is rewritten down to the results kept once it passes its
/// bound, the rewrite is readable by its owner only, and no file is left beside it.
#[test]
fn a_file_past_its_bound_is_rewritten_with_the_results_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.cache");
    let store = ResultFile::open_with_capacity(&path, 40).unwrap();
    assert_eq!(store.capacity(), 40);
    for key in 0..80 {
        store.put(key, json!(key as u64)).unwrap();
    }
    assert_eq!(lines_in(&path), 80, "not rewritten before its bound");
    store.put(80, json!(80)).unwrap();
    assert_eq!(lines_in(&path), 40, "rewritten once past 80 lines");
    assert_eq!((store.get(40), store.get(41)), (None, Some(json!(41))));
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(names, ["r.cache"]);
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    let reopened = ResultFile::open_with_capacity(&path, 40).unwrap();
    assert_eq!((reopened.len(), reopened.get(80)), (40, Some(json!(80))));

    // A file its owner made readable by a group stays so once rewritten: its mode, and
    // its owner and group (as root, a user and group of its own; otherwise those of this
    // process, which can give no other).
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    let as_root = std::fs::metadata("/proc/self").unwrap().uid() == 0;
    if as_root {
        std::os::unix::fs::chown(&path, Some(12_345), Some(12_346)).unwrap();
    }
    let owners = |path: &Path| {
        let meta = std::fs::metadata(path).unwrap();
        (meta.uid(), meta.gid())
    };
    let before = owners(&path);
    for key in 81..=121 {
        store.put(key, json!(key as u64)).unwrap();
    }
    assert_eq!((lines_in(&path), mode(&path)), (40, 0o640));
    assert_eq!(owners(&path), before, "as root: {as_root}");
}

/// A symbolic link at the path stays one: the file it names is rewritten, and a store
/// opened through either name finds every result kept.
#[test]
fn a_symbolic_link_to_the_file_stays_a_link_through_a_rewrite() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("shared.cache");
    let link = dir.path().join("r.cache");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let store = ResultFile::open_with_capacity(&link, 40).unwrap();
    for key in 0..=80 {
        store.put(key, json!(key as u64)).unwrap();
    }
    assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
    assert_eq!(
        lines_in(&target),
        40,
        "the file the link names is rewritten"
    );
    store.put(81, json!(81)).unwrap();
    let through_target = ResultFile::open_with_capacity(&target, 40).unwrap();
    assert_eq!(through_target.get(81), Some(json!(81)));
}

/// Stores in four threads (each its own store, as processes have) append and rewrite
/// the file at once: after each result a store stores, a store opened then finds it.
#[test]
fn no_result_is_lost_to_a_rewrite_another_store_makes_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.cache");
    std::thread::scope(|scope| {
        for thread in 0..4u128 {
            let path = &path;
            scope.spawn(move || {
                // 32 keys in all, each thread's own 8: every rewrite keeps them all.
                let store = ResultFile::open_with_capacity(path, 32).unwrap();
                for round in 0..500u64 {
                    let key = thread * 8 + u128::from(round % 8);
                    store.put(key, json!(round)).unwrap();
                    let opened = ResultFile::open_with_capacity(path, 32).unwrap();
                    assert_eq!(opened.get(key), Some(json!(round)), "key {key}");
                }
            });
        }
    });
    assert!(lines_in(&path) <= 4 * 64, "{} lines", lines_in(&path));
}

/// A rewrite that fails (here its new file cannot be made) is no error: the file keeps
/// growing, and the rewrite is tried again once it holds twice as many lines.
#[test]
fn a_rewrite_that_fails_is_tried_again_at_twice_the_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.cache");
    let blocker = dir.path().join("r.cache.new");
    std::fs::create_dir(&blocker).unwrap();
    let store = ResultFile::open_with_capacity(&path, 40).unwrap();
    for key in 0..=80 {
        store.put(key, json!(key as u64)).unwrap();
    }
    assert_eq!(lines_in(&path), 81, "the rewrite past 80 lines failed");
    std::fs::remove_dir(&blocker).unwrap();
    for key in 81..162 {
        store.put(key, json!(key as u64)).unwrap();
    }
    assert_eq!(
        lines_in(&path),
        162,
        "not tried again before twice the lines"
    );
    store.put(162, json!(162)).unwrap();
    assert_eq!(lines_in(&path), 40, "tried again past 162 lines");
    assert_eq!(store.get(162), Some(json!(162)));
}

/// A store of capacity 0 keeps nothing and writes nothing, but still refuses what no
/// store could read back.
#[test]
fn a_store_of_no_capacity_keeps_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.cache");
    let store = ResultFile::open_with_capacity(&path, 0).unwrap();
    store.put(1, json!(1)).unwrap();
    assert_eq!((store.get(1), store.len()), (None, 0));
    assert_eq!(std::fs::read(&path).unwrap(), b"");
    let deep = (0..200).fold(json!(1), |inner, _| json!([inner]));
    assert!(store.put(2, deep).is_err());
}

/// Someone removes the file while a store holds it: the store's next result goes to a
/// new file at the path, not to the removed one.
#[test]
fn a_removed_file_is_made_again_by_the_next_result() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.cache");
    let store = ResultFile::open(&path).unwrap();
    store.put(1, json!(1)).unwrap();
    std::fs::remove_file(&path).unwrap();
    store.put(2, json!(2)).unwrap();
    let reopened = ResultFile::open(&path).unwrap();
    assert_eq!((reopened.get(1), reopened.get(2)), (None, Some(json!(2))));
}

/// Another process holding the file's lock for longer than a rewrite takes (stopped,
/// say) makes a result fail to be stored, with an error naming the file, rather than
/// the engine wait for ever.
#[test]
fn a_lock_held_past_five_seconds_fails_the_result_and_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.cache");
    let store = ResultFile::open(&path).unwrap();
    let other = std::fs::File::open(&path).unwrap();
    other.lock().unwrap();
    let error = store.put(1, json!(1)).expect_err("the lock is held");
    assert!(error.to_string().contains("r.cache"), "{error}");
    assert!(error.to_string().contains("more than 5 s"), "{error}");
    assert_eq!(store.get(1), None);
    other.unlock().unwrap();
    store.put(1, json!(1)).unwrap();
    assert_eq!(ResultFile::open(&path).unwrap().get(1), Some(json!(1)));
}

/// A store appends under a lock that a rewrite's excludes, and rewrites under one that
/// excludes appends: each waits while another process holds the other.
#[test]
fn appends_and_rewrites_wait_for_the_lock_another_process_holds() {
    use std::sync::mpsc;
    use std::time::Duration;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.cache");
    let store = std::sync::Arc::new(ResultFile::open_with_capacity(&path, 1).unwrap());
    let other = std::fs::File::open(&path).unwrap();
    let put_waits = |lock: fn(&std::fs::File) -> std::io::Result<()>, key: u128| {
        lock(&other).unwrap();
        let (done, put) = mpsc::channel();
        let putting = std::sync::Arc::clone(&store);
        std::thread::spawn(move || done.send(putting.put(key, json!(key as u64))));
        // A put that took no lock would be done long before this.
        assert!(
            put.recv_timeout(Duration::from_millis(300)).is_err(),
            "{key}"
        );
        other.unlock().unwrap();
        put.recv_timeout(Duration::from_secs(30)).unwrap().unwrap();
    };
    // Another process rewriting: an append waits.
    put_waits(std::fs::File::lock, 0);
    for key in 1..64 {
        store.put(key, json!(key as u64)).unwrap();
    }
    // Another process appending: the 65th line's rewrite waits.
    put_waits(std::fs::File::lock_shared, 64);
    assert_eq!(lines_in(&path), 1);
}
