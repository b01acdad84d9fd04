//! The PostgreSQL journal against a real server that this test starts itself (initdb in
//! a temporary directory, loopback only) and stops at the end.
//!
//! Without the server programs the checks are skipped with a printed reason, except with
//! `CI=true`, where that is a failure. Runs without libtest so that one server serves
//! every check and is stopped after the last.

#![allow(clippy::unwrap_used)] // in tests, a failed unwrap is a failed test

#[cfg(feature = "postgres")]
mod common;
#[cfg(feature = "postgres")]
#[path = "postgres/held_replies.rs"]
mod held_replies;

#[cfg(not(feature = "postgres"))]
fn main() -> std::process::ExitCode {
    println!("skipped: orch-journal was built without its `postgres` feature");
    // In CI every check runs: a build without the feature is a mistake there.
    match std::env::var("CI").is_ok_and(|v| v == "true") {
        true => std::process::ExitCode::FAILURE,
        false => std::process::ExitCode::SUCCESS,
    }
}

#[cfg(feature = "postgres")]
fn main() -> std::process::ExitCode {
    checks::main()
}

#[cfg(feature = "postgres")]
mod checks {
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::process::ExitCode;
    use std::sync::atomic::{AtomicU64, Ordering};

    use orch_core::{RunId, Task, TaskId, TaskRecord, TaskStatus, Workflow, WorkflowStatus};
    use orch_journal::postgres::{TempServer, TempServerError};
    use orch_journal::{Journal, JournalError, PgJournal, RunFilter, RunStatus};
    use proptest::test_runner::{Config, TestRunner};
    use serde_json::json;
    use tokio::runtime::Runtime;

    use super::common::{
        in_force, map_instances_come_back_with_their_map, ran_once as record, run, workflow_of,
    };

    struct Env {
        server: TempServer,
        rt: Runtime,
    }

    impl Env {
        fn journal(&self) -> PgJournal {
            self.rt.block_on(self.journal_async())
        }

        /// [`Env::journal`], inside the runtime.
        async fn journal_async(&self) -> PgJournal {
            PgJournal::connect(&self.server.connection_string())
                .await
                .expect("connect")
        }
    }

    impl Env {
        /// Runs `sql` as the server's superuser, on a connection of its own.
        fn sql(&self, sql: &str) {
            let config = self.server.connection_string();
            self.rt.block_on(async {
                let client = client(&config).await;
                client.batch_execute(sql).await.expect("the statements run");
            });
        }
    }

    /// A connection of its own to `config` (inside the runtime).
    async fn client(config: &str) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(config, tokio_postgres::NoTls)
            .await
            .expect("connects");
        tokio::spawn(connection);
        client
    }

    fn fresh_run() -> RunId {
        static N: AtomicU64 = AtomicU64::new(0);
        RunId::parse(&format!("run-{}", N.fetch_add(1, Ordering::Relaxed))).unwrap()
    }

    fn three_tasks() -> Workflow {
        Workflow::new("w", "W")
            .task(Task::new("a", "t"))
            .task(Task::new("b", "t").depends_on(["a"]))
            .task(Task::new("c", "t"))
    }

    /// What was written reads back: each task's record in force (first completed, or
    /// else last), as a previous result for resume too.
    fn records_read_back_as_written(env: &Env) {
        let journal = env.journal();
        let mut runner = TestRunner::new(Config {
            failure_persistence: None,
            ..Config::with_cases(24)
        });
        runner
            .run(&run(5), |(ids, batches)| {
                let workflow = workflow_of("w", &ids);
                let id = fresh_run();
                let mut written: Vec<(TaskId, TaskRecord)> = Vec::new();
                env.rt.block_on(async {
                    let opened = journal.open(&id, &workflow).await.unwrap();
                    for batch in &batches {
                        let owned: Vec<(TaskId, TaskRecord)> = batch
                            .iter()
                            .map(|(i, r)| (TaskId::from(ids[*i].as_str()), r.clone()))
                            .collect();
                        let pairs: Vec<_> = owned.iter().map(|(i, r)| (i, r)).collect();
                        opened.writer.append(&pairs).await.unwrap();
                        written.extend(owned);
                    }
                });
                let loaded = env.rt.block_on(journal.load(&id)).unwrap().unwrap();
                let result = loaded.to_result(&workflow).unwrap();
                for task in &ids {
                    let expected = in_force(&written, task);
                    assert_eq!(loaded.task(task), expected, "task {task:?}");
                    assert_eq!(
                        result.task(task),
                        Some(&expected.cloned().unwrap_or_default())
                    );
                }
                assert_eq!(loaded.status(), RunStatus::Unfinished);
                Ok(())
            })
            .unwrap();
    }

    fn a_reconnected_process_resumes_and_completed_records_are_final(env: &Env) {
        let id = fresh_run();
        let (a, b) = (TaskId::from("a"), TaskId::from("b"));
        {
            let journal = env.journal();
            let opened = env.rt.block_on(journal.open(&id, &three_tasks())).unwrap();
            let done = record(TaskStatus::Completed, json!({"rows": 3}));
            let failed = record(TaskStatus::Failed, json!(null));
            env.rt
                .block_on(opened.writer.append(&[(&a, &done), (&b, &failed)]))
                .unwrap();
        }
        let journal = env.journal();
        let opened = env.rt.block_on(journal.open(&id, &three_tasks())).unwrap();
        let previous = opened.previous.as_ref().expect("a recorded run");
        assert_eq!(previous.task("a").unwrap().result, Some(json!({"rows": 3})));
        assert_eq!(previous.task("b").unwrap().status, TaskStatus::Failed);
        assert_eq!(previous.task("c").unwrap().status, TaskStatus::Pending);
        // A second writer's record for a completed task is ignored; a failed one is replaced.
        let late = record(TaskStatus::Failed, json!("late"));
        let now_done = record(TaskStatus::Completed, json!(2));
        env.rt
            .block_on(
                opened
                    .writer
                    .append(&[(&a, &late), (&b, &now_done), (&b, &late)]),
            )
            .unwrap();
        let loaded = env.rt.block_on(journal.load(&id)).unwrap().unwrap();
        assert_eq!(loaded.task("a").unwrap().result, Some(json!({"rows": 3})));
        assert_eq!(loaded.task("b").unwrap().result, Some(json!(2)));
    }

    fn a_task_dropped_and_added_back_starts_afresh(env: &Env) {
        let run = fresh_run();
        env.rt
            .block_on(super::common::a_task_dropped_and_added_back_starts_afresh(
                &env.journal(),
                &run,
                &format!("back-{run}"),
            ));
    }

    fn a_run_ends_once(env: &Env) {
        let run = fresh_run();
        env.rt.block_on(super::common::a_run_ends_once(
            &env.journal(),
            &run,
            &format!("ends-{run}"),
        ));
    }

    fn a_reopened_run_is_unfinished_until_it_ends_again(env: &Env) {
        let run = fresh_run();
        env.rt.block_on(
            super::common::a_reopened_run_is_unfinished_until_it_ends_again(
                &env.journal(),
                &run,
                &format!("reopened-{run}"),
            ),
        );
    }

    fn a_record_of_no_task_is_refused(env: &Env) {
        let run = fresh_run();
        env.rt
            .block_on(super::common::a_record_of_no_task_is_refused(
                &env.journal(),
                &run,
                &format!("foreign-{run}"),
            ));
    }

    fn a_changed_definition_is_taken_with_the_first_record(env: &Env) {
        let run = fresh_run();
        env.rt.block_on(
            super::common::a_changed_definition_is_taken_with_the_first_record(
                &env.journal(),
                &run,
                &format!("changed-{run}"),
            ),
        );
    }

    fn a_plain_task_in_place_of_a_maps_instance_keeps_its_records(env: &Env) {
        let run = fresh_run();
        env.rt.block_on(
            super::common::a_plain_task_in_place_of_a_maps_instance_keeps_its_records(
                &env.journal(),
                &run,
                &format!("remap-{run}"),
            ),
        );
    }

    fn a_reset_in_a_batch_applies_in_its_place(env: &Env) {
        let run = fresh_run();
        env.rt
            .block_on(super::common::a_reset_in_a_batch_applies_in_its_place(
                &env.journal(),
                &run,
                &format!("reset-{run}"),
            ));
    }

    fn instances_recorded_apart_go_with_a_reset_of_their_map(env: &Env) {
        let run = fresh_run();
        let workflow_id = format!("apart-{run}");
        env.rt
            .block_on(super::common::instances_recorded_apart_go_with_a_reset(
                &env.journal(),
                &run,
                &workflow_id,
            ));
    }

    fn map_instance_records_come_back_with_their_completed_map(env: &Env) {
        let journal = env.journal();
        let run = fresh_run();
        let workflow_id = format!("maps-{run}");
        let workflow = env.rt.block_on(map_instances_come_back_with_their_map(
            &journal,
            &run,
            &workflow_id,
        ));
        // Another writer (a process started while the server still committed what the
        // killed one sent) records the map again: the instances that came with the
        // completion in force stay, as that completion does.
        let (m, m0, m1) = (
            TaskId::from("m"),
            TaskId::from("m[0]"),
            TaskId::from("m[1]"),
        );
        let late = record(TaskStatus::Completed, json!("late"));
        let opened = env.rt.block_on(journal.open(&run, &workflow)).unwrap();
        let batch = [(&m0, &late), (&m1, &late), (&m, &late)];
        env.rt.block_on(opened.writer.append(&batch)).unwrap();
        let loaded = env.rt.block_on(journal.load(&run)).unwrap().unwrap();
        assert_eq!(loaded.task("m[0]").unwrap().result, Some(json!(1)));
        assert_eq!(loaded.task("m[1]").unwrap().status, TaskStatus::Skipped);
        assert_eq!(loaded.task("m").unwrap().result, Some(json!([1, null])));
        drop(opened);
        env.rt.block_on(
            super::common::a_pending_record_resets_a_completion_and_its_instances(
                &journal, &run, &workflow,
            ),
        );
    }

    fn runs_are_listed_and_queried_by_workflow_and_status(env: &Env) {
        let journal = env.journal();
        let prefix = fresh_run();
        let other = Workflow::new(format!("v-{prefix}"), "V").task(Task::new("x", "t"));
        let mine = Workflow::new(format!("w-{prefix}"), "W").task(Task::new("a", "t"));
        let a = TaskId::from("a");
        let done = record(TaskStatus::Completed, json!(1));
        let mut ids = Vec::new();
        for (workflow, end) in [
            (&mine, Some(WorkflowStatus::Completed)),
            (&mine, None),
            (&other, Some(WorkflowStatus::Failed)),
        ] {
            let id = fresh_run();
            env.rt.block_on(async {
                let opened = journal.open(&id, workflow).await.unwrap();
                if workflow.workflow_id() == mine.workflow_id() {
                    opened.writer.append(&[(&a, &done)]).await.unwrap();
                }
                if let Some(status) = end {
                    opened.writer.finish(status).await.unwrap();
                }
            });
            ids.push(id);
        }
        let list = |filter: RunFilter| -> Vec<String> {
            env.rt
                .block_on(journal.list(&filter))
                .unwrap()
                .into_iter()
                .map(|s| {
                    format!(
                        "{}:{}:{}/{}",
                        s.run_id, s.status, s.completed_tasks, s.recorded_tasks
                    )
                })
                .collect()
        };
        let w = mine.workflow_id();
        assert_eq!(
            list(RunFilter::default().workflow(w)),
            [
                format!("{}:completed:1/1", ids[0]),
                format!("{}:unfinished:1/1", ids[1])
            ]
        );
        assert_eq!(
            list(
                RunFilter::default()
                    .workflow(w)
                    .status(RunStatus::Unfinished)
            ),
            [format!("{}:unfinished:1/1", ids[1])]
        );
        let failed = list(RunFilter::default().status(RunStatus::Failed));
        assert!(
            failed.contains(&format!("{}:failed:0/0", ids[2])),
            "{failed:?}"
        );
        assert!(
            list(
                RunFilter::default()
                    .workflow(other.workflow_id())
                    .status(RunStatus::Completed)
            )
            .is_empty()
        );
        // No workflow id holds a NUL: such a filter matches nothing, as with the file
        // journal, rather than failing.
        assert!(list(RunFilter::default().workflow(format!("{w}\0"))).is_empty());
    }

    fn untrustworthy_runs_are_refused(env: &Env) {
        let journal = env.journal();
        let id = fresh_run();
        let a = TaskId::from("a");
        env.rt.block_on(async {
            let opened = journal.open(&id, &three_tasks()).await.unwrap();
            let err = journal.open(&id, &three_tasks()).await.unwrap_err();
            assert!(matches!(err, JournalError::AlreadyOpen { .. }), "{err}");
            let done = record(TaskStatus::Completed, json!(1));
            opened.writer.append(&[(&a, &done)]).await.unwrap();
        });
        let other = Workflow::new("other", "O").task(Task::new("a", "t"));
        let err = env.rt.block_on(journal.open(&id, &other)).unwrap_err();
        assert!(
            err.to_string().ends_with(&format!(
                "run `{id}`: run `{id}` belongs to workflow `w`, not `other`"
            )),
            "{err}"
        );
        let changed = Workflow::new("w", "W").task(Task::new("a", "t").config(json!({"k": 1})));
        let err = env.rt.block_on(journal.open(&id, &changed)).unwrap_err();
        assert!(
            err.to_string().contains("tasks that completed in it have changed since (`a`); all changes: removed `b`, `c`; changed `a`"),
            "{err}"
        );
        // Neither refusal kept the run: another process opens it.
        let other_process = env.journal();
        let reopened = env.rt.block_on(other_process.open(&id, &three_tasks()));
        env.rt.block_on(async { drop(reopened.unwrap()) });
        // A record written by a newer format is refused, naming the run and task.
        let client_config = env.server.connection_string();
        env.rt.block_on(async {
            client(&client_config)
                .await
                .execute(
                    "UPDATE orch_journal_tasks SET record = '{\"v\":2,\"seq\":0,\"kind\":\"task\"}' WHERE run_id = $1",
                    &[&id.as_str()],
                )
                .await
                .unwrap();
        });
        let err = env.rt.block_on(journal.load(&id)).unwrap_err();
        assert!(
            err.to_string().ends_with(&format!(
                "run `{id}`, task `a`: written in journal format 2; this version reads up to 1"
            )),
            "{err}"
        );
        // A run's row the listing cannot read is named in its error.
        let set_status = |status: &'static str| {
            env.rt.block_on(async {
                let sql = "UPDATE orch_journal_runs SET status = $2 WHERE run_id = $1";
                let client = client(&client_config).await;
                client.execute(sql, &[&id.as_str(), &status]).await.unwrap();
            })
        };
        set_status("bogus");
        let err = env.rt.block_on(journal.list(&RunFilter::default()));
        set_status("unfinished");
        let err = err.unwrap_err();
        assert!(
            err.to_string().contains(&format!(
                "table orch_journal_runs, run `{id}`: unknown status \"bogus\""
            )),
            "{err}"
        );
    }

    /// A database whose encoding cannot hold every character takes no run: a task's output
    /// or error holding one it has none for (`€` in LATIN1) would fail its record in the
    /// middle of the run, and at every resume. What it holds can still be listed.
    fn a_database_that_cannot_hold_every_character_takes_no_run(env: &Env) {
        env.sql("DROP DATABASE IF EXISTS orch_latin1");
        env.sql(
            "CREATE DATABASE orch_latin1 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' \
             TEMPLATE template0",
        );
        let latin1 = env
            .server
            .connection_string()
            .replace("dbname=postgres", "dbname=orch_latin1");
        let journal = env
            .rt
            .block_on(PgJournal::connect(&latin1))
            .expect("connects, to read");
        let listed = env.rt.block_on(journal.list(&RunFilter::default()));
        assert_eq!(listed.expect("lists").len(), 0);
        let run = fresh_run();
        let opened = env.rt.block_on(journal.open(&run, &three_tasks()));
        let Err(err) = opened else {
            panic!("a run was opened");
        };
        let message = err.to_string();
        assert!(matches!(err, JournalError::Postgres { .. }), "{message}");
        assert!(message.contains("stores text as LATIN1"), "{message}");
        assert!(message.contains("ENCODING 'UTF8'"), "{message}");
        let load = env.rt.block_on(journal.load(&run)).expect("reads");
        assert!(load.is_none(), "nothing of the run was written");
    }

    /// Tables left by a newer version are refused before anything in them changes: a
    /// database holding only a newer format's marker gets no tables of this version's.
    fn a_newer_format_is_refused_before_any_table_is_made(env: &Env) {
        // One statement each: a multi-statement string runs as one transaction, which
        // these statements may not run in.
        env.sql("DROP DATABASE IF EXISTS orch_newer");
        env.sql("CREATE DATABASE orch_newer");
        let newer = env
            .server
            .connection_string()
            .replace("dbname=postgres", "dbname=orch_newer");
        assert_ne!(
            newer,
            env.server.connection_string(),
            "names the new database"
        );
        let tables = |sql: &str| {
            env.rt.block_on(async {
                let client = client(&newer).await;
                client.batch_execute(sql).await.expect("the statements run");
                let row = client
                    .query_one("SELECT to_regclass('orch_journal_runs') IS NOT NULL", &[])
                    .await
                    .expect("the query runs");
                row.get::<_, bool>(0)
            })
        };
        tables(
            "CREATE TABLE orch_journal_meta (key text PRIMARY KEY, value bigint NOT NULL);
             INSERT INTO orch_journal_meta VALUES ('format', 2);",
        );
        let err = env.rt.block_on(PgJournal::connect(&newer)).unwrap_err();
        assert!(
            matches!(err, JournalError::NewerFormat { found: 2, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("table orch_journal_meta"), "{err}");
        assert!(!tables(""), "no table of this version's was made");
        // A format orch never wrote, or none, is refused as such.
        tables("UPDATE orch_journal_meta SET value = 0");
        let err = env.rt.block_on(PgJournal::connect(&newer)).unwrap_err();
        assert!(matches!(err, JournalError::Corrupt { .. }), "{err}");
        assert!(
            err.to_string().contains("journal format 0 is no format"),
            "{err}"
        );
        tables("DELETE FROM orch_journal_meta");
        let err = env.rt.block_on(PgJournal::connect(&newer)).unwrap_err();
        assert!(
            err.to_string().ends_with(
                "table orch_journal_meta: it has no `format` row: the journal's format is unknown"
            ),
            "{err}"
        );
        assert!(!tables(""), "no table of this version's was made");
    }

    /// A run open in one process (its own connection) cannot be opened by another until
    /// the first lets go of it; a run resumed without one of its tasks still loads.
    fn a_run_has_one_writer_process_and_may_lose_a_task(env: &Env) {
        let id = fresh_run();
        let (first, second) = (env.journal(), env.journal());
        let opened = env.rt.block_on(first.open(&id, &three_tasks())).unwrap();
        let c = TaskId::from("c");
        let done = record(TaskStatus::Completed, json!(3));
        env.rt
            .block_on(opened.writer.append(&[(&c, &done)]))
            .unwrap();
        let err = env
            .rt
            .block_on(second.open(&id, &three_tasks()))
            .unwrap_err();
        assert!(matches!(err, JournalError::InUse { .. }), "{err}");
        assert!(
            err.to_string().contains(
                "is open for writing by another process or journal (which holds its lock on PostgreSQL"
            ),
            "{err}"
        );
        // Dropped outside the runtime, as synchronous code driving the journal with
        // `block_on` would: it lets go of the run all the same.
        drop(opened);
        // Resumed by the other process, without task `c`.
        let without_c = Workflow::new("w", "W")
            .task(Task::new("a", "t"))
            .task(Task::new("b", "t").depends_on(["a"]));
        let reopened = env.rt.block_on(second.open(&id, &without_c)).unwrap();
        // The dropped task's row goes with the first write after the reopening.
        let a = TaskId::from("a");
        let a_done = record(TaskStatus::Completed, json!(1));
        env.rt
            .block_on(reopened.writer.append(&[(&a, &a_done)]))
            .unwrap();
        env.rt.block_on(async { drop(reopened) });
        let loaded = env.rt.block_on(second.load(&id)).unwrap().unwrap();
        assert!(loaded.task("c").is_none());
    }

    /// The first write to a reopened run with a changed workflow also records the new
    /// definition. When it fails, a write sent meanwhile waits for it and carries the
    /// change itself, rather than going in under the old definition.
    fn a_write_sent_beside_a_failed_first_write_carries_the_change(env: &Env) {
        let id = fresh_run();
        let journal = env.journal();
        let workflow = |x: i64| {
            Workflow::new(format!("beside-{id}"), "W")
                .task(Task::new("boom", "t"))
                .task(Task::new("x", "t").config(json!({ "x": x })))
        };
        let first = env.rt.block_on(journal.open(&id, &workflow(1))).unwrap();
        let boom = TaskId::from("boom");
        let failed = record(TaskStatus::Failed, json!(null));
        env.rt
            .block_on(first.writer.append(&[(&boom, &failed)]))
            .unwrap();
        env.rt
            .block_on(first.writer.finish(WorkflowStatus::Failed))
            .unwrap();
        env.rt.block_on(async { drop(first) });
        env.sql(
            "CREATE FUNCTION orch_test_refuse_boom() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN IF NEW.task_id = 'boom' THEN RAISE EXCEPTION 'boom refused'; END IF; \
             RETURN NEW; END $$; \
             CREATE TRIGGER orch_test_refuse_boom BEFORE INSERT OR UPDATE ON orch_journal_tasks \
             FOR EACH ROW EXECUTE FUNCTION orch_test_refuse_boom();",
        );
        let changed = workflow(2);
        let reopened = env.rt.block_on(journal.open(&id, &changed)).unwrap();
        let (x, done) = (TaskId::from("x"), record(TaskStatus::Completed, json!(2)));
        let running = record(TaskStatus::Running, json!(null));
        let (refused, written) = env.rt.block_on(async {
            tokio::join!(
                reopened.writer.append(&[(&boom, &running)]),
                reopened.writer.append(&[(&x, &done)]),
            )
        });
        env.sql("DROP TRIGGER orch_test_refuse_boom ON orch_journal_tasks; DROP FUNCTION orch_test_refuse_boom();");
        assert!(refused.is_err(), "the trigger refuses task `boom`");
        written.unwrap();
        env.rt.block_on(async { drop(reopened) });
        let again = env.rt.block_on(journal.open(&id, &changed)).unwrap();
        assert!(again.changes.is_empty(), "{:?}", again.changes);
        let previous = again.previous.as_ref().expect("a recorded run");
        assert_eq!(
            previous.task("x").map(|r| r.status),
            Some(TaskStatus::Completed)
        );
        env.rt.block_on(async { drop(again) });
    }

    /// A run's lock lasts however long its writer stays quiet (a coordinator running a
    /// long task writes nothing for a while), also on a server that ends quiet sessions
    /// (`idle_session_timeout`, here set for every session of the user).
    fn a_quiet_writer_keeps_its_run(env: &Env) {
        /// Takes the setting away again however the check ends, for the checks after it.
        struct Reset<'e>(&'e Env);
        impl Drop for Reset<'_> {
            fn drop(&mut self) {
                self.0.sql("ALTER ROLE orch RESET idle_session_timeout");
            }
        }
        env.sql("ALTER ROLE orch SET idle_session_timeout = '1s'");
        let reset = Reset(env);
        let id = fresh_run();
        let first = env.journal();
        let opened = env.rt.block_on(first.open(&id, &three_tasks()));
        std::thread::sleep(std::time::Duration::from_millis(2500));
        let second = env.journal();
        let again = env.rt.block_on(second.open(&id, &three_tasks()));
        drop(reset);
        let opened = opened.unwrap();
        let err = again.unwrap_err();
        assert!(matches!(err, JournalError::InUse { .. }), "{err}");
        let c = TaskId::from("c");
        let done = record(TaskStatus::Completed, json!(3));
        env.rt
            .block_on(opened.writer.append(&[(&c, &done)]))
            .unwrap();
        env.rt.block_on(async { drop(opened) });
    }

    /// A write made after its writer was dropped still holds the run: no other process
    /// opens it until that write is done, so the write cannot land in its run.
    fn a_write_outliving_its_writer_holds_the_run(env: &Env) {
        let id = fresh_run();
        let (first, second) = (env.journal(), env.journal());
        let opened = env.rt.block_on(first.open(&id, &three_tasks())).unwrap();
        let c = TaskId::from("c");
        let done = record(TaskStatus::Completed, json!(3));
        let write = opened.writer.append(&[(&c, &done)]);
        env.rt.block_on(async { drop(opened) });
        let err = env
            .rt
            .block_on(second.open(&id, &three_tasks()))
            .unwrap_err();
        assert!(matches!(err, JournalError::InUse { .. }), "{err}");
        env.rt.block_on(write).unwrap();
        let reopened = env.rt.block_on(second.open(&id, &three_tasks())).unwrap();
        let c_record = reopened.previous.as_ref().and_then(|p| p.task("c"));
        assert_eq!(c_record.map(|r| r.status), Some(TaskStatus::Completed));
        env.rt.block_on(async { drop(reopened) });
    }

    /// A run opened on a runtime of its own, shut down before the run's writer is
    /// dropped, is let go all the same: its journal's connection runs on another.
    fn a_run_opened_on_a_runtime_since_shut_down_is_let_go(env: &Env) {
        let id = fresh_run();
        let (first, second) = (env.journal(), env.journal());
        let short = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let opened = short.block_on(first.open(&id, &three_tasks())).unwrap();
        drop(short);
        drop(opened);
        let reopened = env.rt.block_on(second.open(&id, &three_tasks()));
        assert!(reopened.is_ok(), "{:?}", reopened.err());
        env.rt.block_on(async { drop(reopened) });
    }

    /// An open given up while the server's answer to its lock request is on its way
    /// (the run's handle dropped in a `select!`, say) lets go of the lock the server
    /// granted: another process opens the run.
    fn an_open_given_up_while_asking_for_the_lock_lets_go_of_it(env: &Env) {
        let id = fresh_run();
        env.rt.block_on(async {
            let relay = super::held_replies::HeldReplies::start(env.server.port()).await;
            let through_relay = env.server.connection_string().replace(
                &format!("port={}", env.server.port()),
                &format!("port={}", relay.port),
            );
            let first = PgJournal::connect(&through_relay).await.expect("connect");
            let definition = three_tasks();
            tokio::select! {
                opened = first.open(&id, &definition) => {
                    panic!("opened with the lock's answer held back: {:?}", opened.err())
                }
                () = relay.holding() => {}
            }
            let second = env.journal_async().await;
            let opened = second.open(&id, &three_tasks()).await;
            relay.release();
            assert!(opened.is_ok(), "{:?}", opened.err());
        });
    }

    /// A user who may read and write the journal's rows, but does not own its tables
    /// (as an application's role often is), connects and runs; with a schema of its own
    /// first on its search path, it still finds the journal's tables where they are.
    fn a_user_who_does_not_own_the_tables_uses_the_journal(env: &Env) {
        let (earlier, id) = (fresh_run(), fresh_run());
        let opened = env
            .rt
            .block_on(env.journal().open(&earlier, &three_tasks()));
        drop(opened.unwrap());
        env.sql(
            "DROP SCHEMA IF EXISTS orch_app CASCADE;
             DROP ROLE IF EXISTS orch_app;
             CREATE ROLE orch_app LOGIN PASSWORD 'app-pw';
             CREATE SCHEMA orch_app AUTHORIZATION orch_app;
             GRANT SELECT, INSERT, UPDATE, DELETE
                 ON orch_journal_meta, orch_journal_runs, orch_journal_tasks TO orch_app;",
        );
        let config = format!(
            "host=127.0.0.1 port={} user=orch_app password=app-pw dbname=postgres",
            env.server.port()
        );
        let journal = env
            .rt
            .block_on(PgJournal::connect(&config))
            .expect("connects without owning the tables");
        assert!(env.rt.block_on(journal.load(&earlier)).unwrap().is_some());
        let a = TaskId::from("a");
        let opened = env.rt.block_on(journal.open(&id, &three_tasks())).unwrap();
        let done = record(TaskStatus::Completed, json!(1));
        env.rt.block_on(async {
            opened.writer.append(&[(&a, &done)]).await.unwrap();
            opened.writer.sync().await.unwrap();
            opened.writer.finish(WorkflowStatus::Failed).await.unwrap();
        });
        let loaded = env.rt.block_on(env.journal().load(&id)).unwrap().unwrap();
        assert_eq!(loaded.task("a").unwrap().result, Some(json!(1)));
    }

    /// With two hosts in the connection string, one that does not answer (its socket's
    /// connection waits) is given its `connect_timeout`, and the next host is tried,
    /// as libpq does: the time limit is each host's, not the whole attempt's.
    fn a_host_that_does_not_answer_is_passed_over_for_the_next(env: &Env) {
        let journal = env.rt.block_on(async {
            // A listener whose queue of connections to accept is full: the system drops
            // what more comes, and the client's connection waits.
            let full = tokio::net::TcpSocket::new_v4().unwrap();
            full.bind("127.0.0.1:0".parse().unwrap()).unwrap();
            let full = full.listen(0).unwrap();
            let port = full.local_addr().unwrap().port();
            let mut queued = Vec::new();
            for _ in 0..4 {
                let connect = tokio::net::TcpStream::connect(("127.0.0.1", port));
                if let Ok(Ok(stream)) =
                    tokio::time::timeout(std::time::Duration::from_millis(300), connect).await
                {
                    queued.push(stream);
                }
            }
            let config = env
                .server
                .connection_string()
                .replace("host=127.0.0.1", "host=127.0.0.1,127.0.0.1")
                .replace(
                    &format!("port={}", env.server.port()),
                    &format!("port={port},{} connect_timeout=2", env.server.port()),
                );
            let journal = PgJournal::connect(&config).await;
            drop((full, queued));
            journal
        });
        let journal = journal.expect("the second host answers");
        let id = fresh_run();
        env.rt.block_on(journal.open(&id, &three_tasks())).unwrap();
    }

    /// A `sync` polled after a `finish` covers the run's end, as it covers the appends
    /// polled before it: once it returns, another connection reads the run as ended.
    fn a_sync_polled_after_a_finish_covers_it(env: &Env) {
        use std::task::Poll;

        let id = fresh_run();
        let opened = env
            .rt
            .block_on(env.journal().open(&id, &three_tasks()))
            .unwrap();
        let status = env.rt.block_on(async {
            let mut finish = opened.writer.finish(WorkflowStatus::Completed);
            // Polled once: its statement goes out.
            let first = std::future::poll_fn(|cx| Poll::Ready(finish.as_mut().poll(cx))).await;
            assert!(first.is_pending(), "no answer from the server yet");
            opened.writer.sync().await.unwrap();
            let client = client(&env.server.connection_string()).await;
            let sql = "SELECT status FROM orch_journal_runs WHERE run_id = $1";
            let row = client.query_one(sql, &[&id.to_string()]).await.unwrap();
            finish.await.unwrap();
            row.get::<_, String>(0)
        });
        assert_eq!(status, "completed");
    }

    /// When the server ends the journal's connection, the open run's writer fails naming
    /// the run, and the journal connects again for the next open, which resumes the run.
    fn a_lost_connection_fails_the_run_by_name_and_the_journal_connects_again(env: &Env) {
        let name = format!("orch-lost-{}", std::process::id());
        let config = format!("{} application_name={name}", env.server.connection_string());
        let journal = env.rt.block_on(PgJournal::connect(&config)).unwrap();
        let id = fresh_run();
        let (a, b) = (TaskId::from("a"), TaskId::from("b"));
        let opened = env.rt.block_on(journal.open(&id, &three_tasks())).unwrap();
        let done = record(TaskStatus::Completed, json!("a"));
        env.rt
            .block_on(opened.writer.append(&[(&a, &done)]))
            .unwrap();
        env.sql(&format!(
            "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity \
             WHERE application_name = '{name}'"
        ));
        // Reading connects again.
        let loaded = env.rt.block_on(journal.load(&id)).unwrap().unwrap();
        assert_eq!(loaded.task("a").unwrap().result, Some(json!("a")));
        let err = env
            .rt
            .block_on(opened.writer.append(&[(&b, &done)]))
            .unwrap_err()
            .to_string();
        for part in [
            format!("run `{id}`"),
            "the connection to the server was lost".to_owned(),
            "open the run again".to_owned(),
        ] {
            assert!(err.contains(&part), "{part:?} in {err}");
        }
        env.rt.block_on(async { drop(opened) });
        let reopened = env.rt.block_on(journal.open(&id, &three_tasks())).unwrap();
        let previous = reopened.previous.as_ref().expect("the recorded run");
        assert_eq!(previous.task("a").unwrap().result, Some(json!("a")));
        assert_eq!(previous.task("b").unwrap().status, TaskStatus::Pending);
        env.rt
            .block_on(reopened.writer.append(&[(&b, &done)]))
            .unwrap();
    }

    /// An error while reading, recording or locking a run names the run.
    fn errors_about_a_run_name_it(env: &Env) {
        let journal = env.journal();
        let id = fresh_run();
        let opened = env.rt.block_on(journal.open(&id, &three_tasks())).unwrap();
        env.rt.block_on(async { drop(opened) });
        env.sql("ALTER TABLE orch_journal_tasks RENAME TO orch_journal_tasks_away");
        let loading = env.rt.block_on(journal.load(&id));
        let opening = env.rt.block_on(journal.open(&id, &three_tasks())).map(drop);
        env.sql("ALTER TABLE orch_journal_tasks_away RENAME TO orch_journal_tasks");
        for error in [loading.map(drop).unwrap_err(), opening.unwrap_err()] {
            let text = error.to_string();
            assert!(text.contains(&format!("run `{id}`: ")), "{text}");
        }
    }

    /// What the tables cannot hold is refused when the run is opened: found at the first
    /// write, a task id too long to key a row by failed the run after its first tasks
    /// ran, and every resume after it.
    fn ids_and_names_the_tables_cannot_hold_are_refused_at_open(env: &Env) {
        let journal = env.journal();
        let long = "t".repeat(3000);
        let cases = [
            (
                Workflow::new("w", "W").task(Task::new(long.as_str(), "t")),
                "task id `tttt",
            ),
            (
                Workflow::new(long.as_str(), "W").task(Task::new("a", "t")),
                "the workflow id `tttt",
            ),
            (
                Workflow::new("w", "W\0").task(Task::new("a", "t")),
                "the workflow's name holds a NUL character",
            ),
            (
                Workflow::new("w\0", "W").task(Task::new("a", "t")),
                "the workflow id holds a NUL character",
            ),
            (
                Workflow::new("w", "W").task(Task::new("a\0b", "t")),
                "task id `a\\0b` holds a NUL character",
            ),
        ];
        for (workflow, expected) in cases {
            let id = fresh_run();
            let error = env
                .rt
                .block_on(journal.open(&id, &workflow))
                .map(drop)
                .unwrap_err();
            let text = error.to_string();
            assert!(text.contains(expected), "{text}");
            // Nothing was written.
            assert!(env.rt.block_on(journal.load(&id)).unwrap().is_none());
        }
        // At the limit, a task id fits, with room for its map instances' ids.
        let workflow = Workflow::new("w", "W").task(Task::new("t".repeat(2000), "t"));
        let id = fresh_run();
        let opened = env.rt.block_on(journal.open(&id, &workflow)).unwrap();
        let record = record(TaskStatus::Completed, json!(1));
        let task = TaskId::from("t".repeat(2000));
        let instance = TaskId::from(format!("{}[4294967295]", "t".repeat(2000)));
        env.rt
            .block_on(
                opened
                    .writer
                    .append(&[(&instance, &record), (&task, &record)]),
            )
            .unwrap();
    }

    fn the_password_never_shows(env: &Env) {
        let password = env.server.password();
        let journal = env.journal();
        let id = fresh_run();
        let opened = env.rt.block_on(journal.open(&id, &three_tasks())).unwrap();
        for text in [format!("{journal:?}"), format!("{opened:?}")] {
            assert!(!text.contains(password), "{text}");
            assert!(text.contains("orch@127.0.0.1"), "{text}");
        }
        let good = env.server.connection_string();
        let bad_configs = [
            // The right password on a port with no server; a wrong password; strings that
            // do not parse, in both forms.
            good.replace(&format!("port={}", env.server.port()), "port=1"),
            good.replace(password, &format!("{password}x")),
            format!("{good} port=notaport"),
            format!("postgresql://orch:{password}@127.0.0.1:notaport/postgres"),
            format!("postgresql://orch:{password}@127.0.0.1:1/postgres"),
        ];
        for config in bad_configs {
            let err = env.rt.block_on(PgJournal::connect(&config)).unwrap_err();
            for text in [err.to_string(), format!("{err:?}")] {
                assert!(!text.contains(password), "{text}");
            }
            assert!(err.to_string().starts_with("PostgreSQL: cannot "), "{err}");
        }
        let err = env
            .rt
            .block_on(PgJournal::connect(&good.replace(password, "wrong")))
            .unwrap_err();
        assert!(
            err.to_string().contains("password authentication failed"),
            "{err}"
        );
    }

    /// A connection held up by another session's lock on the journal's tables says so,
    /// rather than blame the network.
    fn a_connect_held_up_by_a_lock_on_the_tables_says_so(env: &Env) {
        let config = env.server.connection_string();
        drop(env.journal()); // the tables are there
        env.rt.block_on(async {
            let mut locker = client(&config).await;
            let lock = locker.transaction().await.unwrap();
            lock.batch_execute("LOCK TABLE orch_journal_tasks IN ACCESS EXCLUSIVE MODE")
                .await
                .unwrap();
            let impatient = format!("{config} connect_timeout=1");
            let err = PgJournal::connect(&impatient).await.unwrap_err();
            lock.rollback().await.unwrap();
            let text = err.to_string();
            assert!(text.contains("connected to orch@127.0.0.1:"), "{err}");
            assert!(text.contains("lock on the journal's tables"), "{err}");
        });
        env.journal(); // and connects once the lock is gone
    }

    pub(super) fn main() -> ExitCode {
        let in_ci = std::env::var("CI").is_ok_and(|v| v == "true");
        let server = match TempServer::start() {
            Ok(server) => server,
            Err(TempServerError::NotInstalled(why)) if !in_ci => {
                println!("skipped: {why}");
                return ExitCode::SUCCESS;
            }
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        let env = Env { server, rt };
        type Check = (&'static str, fn(&Env));
        let checks: [Check; 29] = [
            ("records_read_back_as_written", records_read_back_as_written),
            (
                "a_reset_in_a_batch_applies_in_its_place",
                a_reset_in_a_batch_applies_in_its_place,
            ),
            (
                "a_host_that_does_not_answer_is_passed_over_for_the_next",
                a_host_that_does_not_answer_is_passed_over_for_the_next,
            ),
            (
                "a_sync_polled_after_a_finish_covers_it",
                a_sync_polled_after_a_finish_covers_it,
            ),
            (
                "a_write_sent_beside_a_failed_first_write_carries_the_change",
                a_write_sent_beside_a_failed_first_write_carries_the_change,
            ),
            ("a_quiet_writer_keeps_its_run", a_quiet_writer_keeps_its_run),
            (
                "a_write_outliving_its_writer_holds_the_run",
                a_write_outliving_its_writer_holds_the_run,
            ),
            ("a_run_ends_once", a_run_ends_once),
            (
                "a_reopened_run_is_unfinished_until_it_ends_again",
                a_reopened_run_is_unfinished_until_it_ends_again,
            ),
            (
                "a_record_of_no_task_is_refused",
                a_record_of_no_task_is_refused,
            ),
            (
                "a_reconnected_process_resumes_and_completed_records_are_final",
                a_reconnected_process_resumes_and_completed_records_are_final,
            ),
            (
                "a_task_dropped_and_added_back_starts_afresh",
                a_task_dropped_and_added_back_starts_afresh,
            ),
            (
                "a_changed_definition_is_taken_with_the_first_record",
                a_changed_definition_is_taken_with_the_first_record,
            ),
            (
                "a_plain_task_in_place_of_a_maps_instance_keeps_its_records",
                a_plain_task_in_place_of_a_maps_instance_keeps_its_records,
            ),
            (
                "instances_recorded_apart_go_with_a_reset_of_their_map",
                instances_recorded_apart_go_with_a_reset_of_their_map,
            ),
            (
                "map_instance_records_come_back_with_their_completed_map",
                map_instance_records_come_back_with_their_completed_map,
            ),
            (
                "runs_are_listed_and_queried_by_workflow_and_status",
                runs_are_listed_and_queried_by_workflow_and_status,
            ),
            (
                "untrustworthy_runs_are_refused",
                untrustworthy_runs_are_refused,
            ),
            (
                "a_newer_format_is_refused_before_any_table_is_made",
                a_newer_format_is_refused_before_any_table_is_made,
            ),
            (
                "a_database_that_cannot_hold_every_character_takes_no_run",
                a_database_that_cannot_hold_every_character_takes_no_run,
            ),
            ("the_password_never_shows", the_password_never_shows),
            (
                "a_connect_held_up_by_a_lock_on_the_tables_says_so",
                a_connect_held_up_by_a_lock_on_the_tables_says_so,
            ),
            (
                "ids_and_names_the_tables_cannot_hold_are_refused_at_open",
                ids_and_names_the_tables_cannot_hold_are_refused_at_open,
            ),
            ("errors_about_a_run_name_it", errors_about_a_run_name_it),
            (
                "a_run_has_one_writer_process_and_may_lose_a_task",
                a_run_has_one_writer_process_and_may_lose_a_task,
            ),
            (
                "an_open_given_up_while_asking_for_the_lock_lets_go_of_it",
                an_open_given_up_while_asking_for_the_lock_lets_go_of_it,
            ),
            (
                "a_run_opened_on_a_runtime_since_shut_down_is_let_go",
                a_run_opened_on_a_runtime_since_shut_down_is_let_go,
            ),
            (
                "a_user_who_does_not_own_the_tables_uses_the_journal",
                a_user_who_does_not_own_the_tables_uses_the_journal,
            ),
            (
                "a_lost_connection_fails_the_run_by_name_and_the_journal_connects_again",
                a_lost_connection_fails_the_run_by_name_and_the_journal_connects_again,
            ),
        ];
        let filters: Vec<String> = std::env::args()
            .skip(1)
            .filter(|a| !a.starts_with('-'))
            .collect();
        let chosen: Vec<_> = checks
            .iter()
            .filter(|(name, _)| {
                filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str()))
            })
            .collect();
        println!("\nrunning {} tests", chosen.len());
        let mut failed = 0;
        for (name, check) in &chosen {
            let outcome = catch_unwind(AssertUnwindSafe(|| check(&env)));
            println!(
                "test {name} ... {}",
                if outcome.is_ok() { "ok" } else { "FAILED" }
            );
            failed += usize::from(outcome.is_err());
        }
        let passed = chosen.len() - failed;
        let verdict = if failed == 0 { "ok" } else { "FAILED" };
        let filtered = checks.len() - chosen.len();
        println!(
            "\ntest result: {verdict}. {passed} passed; {failed} failed; 0 ignored; 0 measured; {filtered} filtered out\n"
        );
        drop(env);
        if failed == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }
}
