//! `parallel`: three slots let the branches overlap. Timed on tokio's paused clock, so
//! the comparison holds however busy the machine is.

use std::time::Duration;

use orch::prelude::*;

#[path = "../parallel.rs"]
#[allow(dead_code)]
mod parallel;

const N: u64 = 300;
const DELAY: Duration = Duration::from_millis(100);

#[tokio::test(start_paused = true)]
async fn three_slots_overlap_the_branches() {
    let one = parallel::run(1, N, DELAY).await.expect("runs");
    let three = parallel::run(3, N, DELAY).await.expect("runs");

    let expected = N * (N + 1) * (2 * N + 1) / 6;
    for outcome in [&one, &three] {
        assert_eq!(outcome.result.status, WorkflowStatus::Completed);
        assert_eq!(outcome.sum_of_squares, expected);
    }
    assert_eq!(one.peak_concurrency, 1);
    assert_eq!(three.peak_concurrency, 3);

    assert!(one.wall_time >= 3 * DELAY, "{:?}", one.wall_time);
    assert!(three.wall_time >= DELAY, "{:?}", three.wall_time);
    assert!(three.wall_time < 2 * DELAY, "{:?}", three.wall_time);
    assert!(three.wall_time < one.wall_time);
}

#[tokio::test(start_paused = true)]
async fn merge_waits_for_every_branch() {
    let outcome = parallel::run(3, 10, DELAY).await.expect("runs");
    let merge = outcome.result.task("merge").expect("recorded");
    let merge_start = merge.start_time.expect("merge started");
    for id in parallel::BRANCHES {
        let branch = outcome.result.task(id).expect("recorded");
        assert_eq!(branch.status, TaskStatus::Completed);
        assert!(branch.end_time.expect("ended") <= merge_start);
    }
    assert_eq!(outcome.sum_of_squares, 385);
}

#[tokio::test]
async fn zero_slots_is_an_error() {
    assert!(parallel::run(0, N, DELAY).await.is_err());
}
