//! The saga barrier against the real MariaDB: duplicates, null compensation, hanging
//! actions, and an action racing its own compensation.

use kit::barrier::{self, ActionGate, CompensationGate};
use kit::saga::{Op, SagaRef};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement, TransactionTrait};

/// A schema with the barrier table and one counter the "business change" moves.
struct Fixture {
    db: DatabaseConnection,
    schema: String,
}

impl Fixture {
    async fn new() -> Self {
        let schema = format!("{}kit", kit::testing::unique_prefix());
        let url = kit::testing::mysql_url();
        let server = Database::connect(&url).await.unwrap();
        server.execute_unprepared(&format!("CREATE DATABASE `{schema}`")).await.unwrap();
        let mut opts = sea_orm::ConnectOptions::new(format!("{url}/{schema}"));
        opts.max_connections(32).sqlx_logging(false);
        let db = Database::connect(opts).await.unwrap();
        db.execute_unprepared(barrier::CREATE_TABLE).await.unwrap();
        db.execute_unprepared("CREATE TABLE counter (id INT PRIMARY KEY, value BIGINT NOT NULL)").await.unwrap();
        db.execute_unprepared("INSERT INTO counter VALUES (1, 0)").await.unwrap();
        Self { db, schema }
    }

    async fn value(&self) -> i64 {
        let row = self.db.query_one_raw(Statement::from_string(DbBackend::MySql, "SELECT value FROM counter")).await;
        row.unwrap().unwrap().try_get_by_index(0).unwrap()
    }

    async fn add(&self, txn: &impl ConnectionTrait, delta: i64) {
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::MySql,
            "UPDATE counter SET value = value + ? WHERE id = 1",
            [delta.into()],
        ))
        .await
        .unwrap();
    }

    /// The action: +1, recording "done" as its result. `fail` rolls it back half-way.
    async fn action(&self, saga_id: &str, fail: bool) -> ActionGate {
        let saga = SagaRef::new(saga_id, "STEP", Op::Action).unwrap();
        let txn = self.db.begin().await.unwrap();
        let gate = barrier::enter_action(&txn, &saga).await.unwrap();
        if gate == ActionGate::Proceed {
            self.add(&txn, 1).await;
            if fail {
                txn.rollback().await.unwrap();
                return gate;
            }
            barrier::record_result(&txn, &saga, b"done".to_vec()).await.unwrap();
        }
        txn.commit().await.unwrap();
        gate
    }

    /// The action result first: +1, then the barrier row claimed with "first" as its result;
    /// if that row was there before, roll back and decide through the gate instead.
    async fn action_result_first(&self, saga_id: &str) -> ActionGate {
        let saga = SagaRef::new(saga_id, "STEP", Op::Action).unwrap();
        let txn = self.db.begin().await.unwrap();
        self.add(&txn, 1).await;
        if barrier::claim_actions(&txn, &[(&saga, b"first".to_vec())]).await.unwrap() {
            txn.commit().await.unwrap();
            return ActionGate::Proceed;
        }
        txn.rollback().await.unwrap();
        self.action(saga_id, false).await
    }

    async fn compensate(&self, saga_id: &str) -> CompensationGate {
        let saga = SagaRef::new(saga_id, "STEP", Op::Compensate).unwrap();
        let txn = self.db.begin().await.unwrap();
        let gate = barrier::enter_compensation(&txn, &saga).await.unwrap();
        if gate == CompensationGate::Undo {
            self.add(&txn, -1).await;
        }
        txn.commit().await.unwrap();
        gate
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        kit::testing::cleanup_blocking(vec![self.schema.clone()], None);
    }
}

#[tokio::test]
async fn a_duplicate_action_returns_the_stored_result_and_changes_nothing() {
    let f = Fixture::new().await;
    assert_eq!(f.action("s1", false).await, ActionGate::Proceed);
    assert_eq!(f.action("s1", false).await, ActionGate::AlreadyDone(Some(b"done".to_vec())));
    assert_eq!(f.value().await, 1);
}

#[tokio::test]
async fn a_compensation_undoes_once() {
    let f = Fixture::new().await;
    f.action("s1", false).await;
    assert_eq!(f.compensate("s1").await, CompensationGate::Undo);
    assert_eq!(f.compensate("s1").await, CompensationGate::AlreadyCompensated);
    assert_eq!(f.value().await, 0);
}

#[tokio::test]
async fn a_compensation_before_its_action_is_null_and_blocks_the_hanging_action() {
    let f = Fixture::new().await;
    assert_eq!(f.compensate("s1").await, CompensationGate::NullCompensation);
    assert_eq!(f.action("s1", false).await, ActionGate::Compensated);
    assert_eq!(f.value().await, 0);
}

#[tokio::test]
async fn an_action_that_rolled_back_leaves_no_trace() {
    let f = Fixture::new().await;
    assert_eq!(f.action("s1", true).await, ActionGate::Proceed);
    assert_eq!(f.value().await, 0);
    assert_eq!(f.compensate("s1").await, CompensationGate::NullCompensation);
    assert_eq!(f.value().await, 0);
}

#[tokio::test]
async fn steps_and_sagas_are_independent() {
    let f = Fixture::new().await;
    f.action("s1", false).await;
    f.action("s2", false).await;
    f.compensate("s2").await;
    assert_eq!(f.value().await, 1);
}

/// Each of 80 actions (gated, or result first) raced against its compensation, in both
/// orders of starting: every one either ran and was undone, or was refused after a null
/// compensation, and the counter nets to zero.
async fn race_actions_against_compensations(result_first: bool) {
    let f = Fixture::new().await;
    let act = |id: String| {
        let f = &f;
        async move { if result_first { f.action_result_first(&id).await } else { f.action(&id, false).await } }
    };
    let races = (0..80).map(|i| {
        let (f, act) = (&f, &act);
        async move {
            let id = format!("race-{i}");
            if i % 2 == 0 {
                tokio::join!(act(id.clone()), f.compensate(&id))
            } else {
                let (c, a) = tokio::join!(f.compensate(&id), act(id.clone()));
                (a, c)
            }
        }
    });
    for (action, compensation) in futures::future::join_all(races).await {
        match (action, compensation) {
            (ActionGate::Proceed, CompensationGate::Undo)
            | (ActionGate::Compensated, CompensationGate::NullCompensation) => {}
            other => panic!("impossible interleaving {other:?}"),
        }
    }
    assert_eq!(f.value().await, 0);
}

#[tokio::test]
async fn actions_racing_their_compensations_always_net_to_zero() {
    race_actions_against_compensations(false).await;
}

#[tokio::test]
async fn concurrent_duplicate_actions_run_once() {
    let f = Fixture::new().await;
    let gates = futures::future::join_all((0..25).map(|_| f.action("dup", false))).await;
    assert_eq!(gates.iter().filter(|g| **g == ActionGate::Proceed).count(), 1);
    assert_eq!(f.value().await, 1);
}

#[tokio::test]
async fn service_pools_run_at_read_committed() {
    struct NoMigrations;
    impl sea_orm_migration::MigratorTrait for NoMigrations {
        fn migrations() -> Vec<Box<dyn sea_orm_migration::MigrationTrait>> {
            Vec::new()
        }
    }
    let schema = format!("{}iso", kit::testing::unique_prefix());
    let db = kit::db::connect_and_migrate::<NoMigrations>(&kit::testing::mysql_url(), &schema, 2).await.unwrap();
    let row = db
        .query_one_raw(Statement::from_string(DbBackend::MySql, "SELECT @@SESSION.tx_isolation"))
        .await
        .unwrap()
        .unwrap();
    let level: String = row.try_get_by_index(0).unwrap();
    kit::testing::cleanup_blocking(vec![schema], None);
    assert_eq!(level, "READ-COMMITTED");
}

#[tokio::test]
async fn a_result_first_action_runs_once_and_its_duplicate_gets_the_stored_result() {
    let f = Fixture::new().await;
    assert_eq!(f.action_result_first("s1").await, ActionGate::Proceed);
    assert_eq!(f.action_result_first("s1").await, ActionGate::AlreadyDone(Some(b"first".to_vec())));
    assert_eq!(f.action("s1", false).await, ActionGate::AlreadyDone(Some(b"first".to_vec())));
    assert_eq!(f.value().await, 1);
    assert_eq!(f.compensate("s1").await, CompensationGate::Undo);
    assert_eq!(f.value().await, 0);
}

#[tokio::test]
async fn a_result_first_action_after_its_compensation_is_refused_and_undone() {
    let f = Fixture::new().await;
    assert_eq!(f.compensate("s1").await, CompensationGate::NullCompensation);
    assert_eq!(f.action_result_first("s1").await, ActionGate::Compensated);
    assert_eq!(f.value().await, 0);
}

#[tokio::test]
async fn result_first_actions_racing_their_compensations_always_net_to_zero() {
    race_actions_against_compensations(true).await;
}

#[tokio::test]
async fn concurrent_duplicate_result_first_actions_run_once() {
    let f = Fixture::new().await;
    let gates = futures::future::join_all((0..25).map(|_| f.action_result_first("dup"))).await;
    assert_eq!(gates.iter().filter(|g| **g == ActionGate::Proceed).count(), 1, "{gates:?}");
    assert!(gates.iter().all(|g| matches!(g, ActionGate::Proceed | ActionGate::AlreadyDone(_))));
    assert_eq!(f.value().await, 1);
}

#[tokio::test]
async fn a_batch_of_fresh_actions_proceeds_and_a_mixed_one_tells_each_apart() {
    let f = Fixture::new().await;
    let saga = |id: &str| SagaRef::new(id, "STEP", Op::Action).unwrap();
    let (a, b, c) = (saga("a"), saga("b"), saga("c"));
    let txn = f.db.begin().await.unwrap();
    let gates = barrier::enter_actions(&txn, &[&a, &b]).await.unwrap();
    assert_eq!(gates, vec![ActionGate::Proceed, ActionGate::Proceed]);
    barrier::record_result(&txn, &a, b"a".to_vec()).await.unwrap();
    txn.commit().await.unwrap();
    assert_eq!(f.compensate("c").await, CompensationGate::NullCompensation);
    let txn = f.db.begin().await.unwrap();
    let d = saga("d");
    let gates = barrier::enter_actions(&txn, &[&a, &c, &d]).await.unwrap();
    assert_eq!(gates, vec![ActionGate::AlreadyDone(Some(b"a".to_vec())), ActionGate::Compensated, ActionGate::Proceed]);
    txn.rollback().await.unwrap();
}
