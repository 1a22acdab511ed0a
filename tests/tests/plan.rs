//! The daily plan end to end: a real controller and agent, as processes of this build.

use anyhow::{Result, bail};
use ordo_tests::{Cluster, ENDED};
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The UTC date `days` days after 1970-01-01, `YYYY-MM-DD` (civil from days, proleptic
/// Gregorian).
fn utc_date(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Lines of the file the jobs append their order ids to.
fn ran(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A controller and agent `a1`, the orders of a schedule firing every 2 s (a cron with
/// seconds first, `more` added to it) handed to the agent 10 s ahead; each job appends its
/// order id to `ran_file`.
async fn every_two_seconds(
    ran_file: &std::path::Path,
    late_ms: Option<u64>,
    more: &str,
) -> Result<Cluster> {
    let mut c = Cluster::new(&["a1"])?;
    c.edit_controller(|f| {
        f.plan.attach_ahead_ms = 10_000;
        if let Some(late_ms) = late_ms {
            f.plan.late_ms = late_ms;
        }
    })?;
    c.start_controller().await?;
    c.start_agent("a1")?;
    let workflow = format!(
        "workflow: w\njobs:\n  job: {{ agent: a1, script: 'echo \"$ORDO_ORDER_ID\" >> {}' }}\nsteps:\n  - run: job\n",
        ran_file.display()
    );
    let schedule = format!("schedule: s\nworkflow: w\ncron: \"*/2 * * * * *\"\n{more}");
    c.deploy(&[
        ("agent.yaml", c.agent_yaml("a1")?),
        ("w.yaml", workflow),
        ("s.yaml", schedule),
    ])
    .await?;
    Ok(c)
}

/// Waits until at least two planned orders 3 s or more ahead are on the agent.
async fn planned_on_the_agent_ahead(c: &Cluster) -> Result<Vec<Json>> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = now_ms();
        let ahead: Vec<Json> = c
            .orders()
            .await?
            .into_iter()
            .filter(|o| {
                o["state"] == "fresh"
                    && o["holder"]["type"] == "agent"
                    && o["scheduledFor"].as_i64().is_some_and(|t| t > now + 3000)
            })
            .collect();
        if ahead.len() >= 2 {
            return Ok(ahead);
        }
        if Instant::now() > deadline {
            bail!(
                "no planned orders on the agent ahead of time:\n{}",
                c.logs()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A planned order is handed to its agent ahead of time; with the controller stopped, the
/// agent starts it at its instant by itself. Back, the controller learns what ran: every run
/// shows in the plan, each order ran once, and no instant was planned twice.
#[tokio::test]
async fn process_planned_orders_start_on_their_agent_while_the_controller_is_stopped() -> Result<()>
{
    let out = tempfile::tempdir()?;
    let ran_file = out.path().join("ran");
    let mut c = every_two_seconds(&ran_file, None, "").await?;

    let ahead = planned_on_the_agent_ahead(&c).await?;
    let ids: Vec<String> = ahead
        .iter()
        .filter_map(|o| o["id"].as_str().map(str::to_owned))
        .collect();
    assert!(
        ids.iter()
            .all(|id| id.starts_with('#') && id.contains("#s@"))
    );

    c.controller.as_mut().unwrap().stop();
    // The agent runs them by itself.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let lines = ran(&ran_file);
        if ids.iter().all(|id| lines.contains(id)) {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "the agent did not start {ids:?} alone; ran {lines:?}\n{}",
                c.logs()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    c.start_controller().await?;
    c.wait_states(&ids, ENDED, Duration::from_secs(30)).await?;
    let plan: Json = c.api.get_json(&c.url("/plan?schedule=s")).await?;
    for id in &ids {
        let entry = plan["entries"]
            .as_array()
            .and_then(|es| es.iter().find(|e| e["orderId"] == id.as_str()))
            .unwrap_or_else(|| panic!("{id} is in the plan: {plan}"));
        assert_eq!(entry["status"], "ordered", "{entry}");
        assert_eq!(entry["orderState"], "finished", "{entry}");
    }
    let mut runs: BTreeMap<String, usize> = BTreeMap::new();
    for line in ran(&ran_file) {
        *runs.entry(line).or_default() += 1;
    }
    assert!(
        runs.values().all(|n| *n == 1),
        "each order ran once: {runs:?}"
    );
    let mut instants: Vec<i64> = plan["entries"]
        .as_array()
        .map(|es| es.iter().filter_map(|e| e["at"].as_i64()).collect())
        .unwrap_or_default();
    let n = instants.len();
    instants.dedup();
    assert_eq!(instants.len(), n, "no instant planned twice");
    Ok(())
}

/// A planned order handed to its agent ahead of time carries its schedule's `missed:` policy.
/// With `skip`, an agent that was down at the instant and starts again more than `late_ms`
/// after it does not run the order: it is cancelled, and the plan shows its instant as missed.
#[tokio::test]
async fn process_an_agent_back_after_a_planned_instant_does_not_run_it_with_skip() -> Result<()> {
    let out = tempfile::tempdir()?;
    let ran_file = out.path().join("ran");
    let mut c = every_two_seconds(&ran_file, Some(1_000), "missed: skip\n").await?;

    let ahead = planned_on_the_agent_ahead(&c).await?;
    c.agent("a1").expect("agent a1").stop();
    let last = ahead
        .iter()
        .filter_map(|o| o["scheduledFor"].as_i64())
        .max()
        .unwrap_or_default();
    let ids: Vec<String> = ahead
        .iter()
        .filter_map(|o| o["id"].as_str().map(str::to_owned))
        .collect();
    // Down until every one of them is more than `late_ms` past its instant.
    let deadline = Instant::now() + Duration::from_secs(30);
    while now_ms() <= last + 1_500 {
        if Instant::now() > deadline {
            bail!("the clock did not pass {last}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    c.start_agent("a1")?;
    let ended = c.wait_states(&ids, ENDED, Duration::from_secs(30)).await?;
    for o in &ended {
        assert_eq!(o["state"], "cancelled", "{o}");
    }
    let lines = ran(&ran_file);
    assert!(
        ids.iter().all(|id| !lines.contains(id)),
        "{ids:?} must not run; ran {lines:?}"
    );
    let plan: Json = c.api.get_json(&c.url("/plan?schedule=s")).await?;
    for id in &ids {
        let entry = plan["entries"]
            .as_array()
            .and_then(|es| es.iter().find(|e| e["orderId"] == id.as_str()))
            .unwrap_or_else(|| panic!("{id} is in the plan: {plan}"));
        assert_eq!(entry["status"], "skipped", "{entry}");
        assert_eq!(entry["why"], "missed", "{entry}");
    }
    // Later instants run as planned.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ran(&ran_file).iter().any(|l| l.contains("#s@")) {
        if Instant::now() > deadline {
            bail!("no later planned order ran:\n{}", c.logs());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// `GET /plan/explain`, the cancel of a day and a backfill against a real controller: the
/// explanation names every hour of the day; a cancelled day's instants are skipped; a backfill
/// of yesterday adds its 24 orders, which run once each, and a second backfill adds none.
#[tokio::test]
async fn process_plan_explain_cancel_a_day_and_backfill() -> Result<()> {
    let mut c = Cluster::new(&["a1"])?;
    c.start_controller().await?;
    c.start_agent("a1")?;
    let out = tempfile::tempdir()?;
    let ran_file = out.path().join("ran");
    let workflow = format!(
        "workflow: w\njobs:\n  job: {{ agent: a1, script: 'echo \"$ORDO_ORDER_ID\" >> {}', parallelism: 8 }}\nsteps:\n  - run: job\n",
        ran_file.display()
    );
    let schedule = "schedule: s\nworkflow: w\ncron: \"0 * * * *\"\nmissed: skip\n".to_owned();
    c.deploy(&[
        ("agent.yaml", c.agent_yaml("a1")?),
        ("w.yaml", workflow),
        ("s.yaml", schedule),
    ])
    .await?;
    let day = now_ms().div_euclid(86_400_000);
    let (yesterday, tomorrow) = (utc_date(day - 1), utc_date(day + 1));

    let explained: Json = c
        .api
        .get_json(&c.url(&format!("/plan/explain?schedule=s&date={tomorrow}")))
        .await?;
    let instants = explained["instants"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(instants.len(), 24, "{explained}");
    assert!(
        instants
            .iter()
            .all(|i| i["status"] == "planned"
                && i["reasons"].as_array().is_some_and(|r| !r.is_empty())),
        "{explained}"
    );
    let unknown = c
        .api
        .get_json::<Json>(&c.url(&format!("/plan/explain?schedule=nope&date={tomorrow}")))
        .await;
    assert!(unknown.is_err(), "an unknown schedule is refused");
    assert_eq!(utc_date(0), "1970-01-01");
    assert_eq!(utc_date(20_789), "2026-12-02");

    c.post(
        &format!("/plan/dates/{tomorrow}/cancel?schedule=s"),
        &serde_json::json!({}),
    )
    .await?;
    let plan: Json = c
        .api
        .get_json(&c.url(&format!("/plan?schedule=s&date={tomorrow}")))
        .await?;
    let entries = plan["entries"].as_array().cloned().unwrap_or_default();
    assert_eq!(entries.len(), 24, "{plan}");
    assert!(
        entries
            .iter()
            .all(|e| e["status"] == "skipped" && e["why"] == "cancelled"),
        "{plan}"
    );

    let backfill = format!("/plan/schedules/s/backfill?from={yesterday}&until={yesterday}");
    c.post(&backfill, &serde_json::json!({})).await?;
    let prefix = format!("#{yesterday}#s@");
    let ids: Vec<String> = c
        .orders()
        .await?
        .iter()
        .filter_map(|o| {
            o["id"]
                .as_str()
                .filter(|id| id.starts_with(&prefix))
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(ids.len(), 24, "{ids:?}");
    let ended = c.wait_states(&ids, ENDED, Duration::from_secs(60)).await?;
    assert!(ended.iter().all(|o| o["state"] == "finished"), "{ended:?}");
    c.post(&backfill, &serde_json::json!({})).await?;
    let again = c
        .orders()
        .await?
        .iter()
        .filter(|o| o["id"].as_str().is_some_and(|id| id.starts_with(&prefix)))
        .count();
    assert_eq!(again, 24, "a second backfill adds nothing");
    let mut runs: BTreeMap<String, usize> = BTreeMap::new();
    for line in ran(&ran_file) {
        *runs.entry(line).or_default() += 1;
    }
    assert!(
        ids.iter().all(|id| runs.get(id) == Some(&1)),
        "each backfilled order ran once: {runs:?}"
    );
    Ok(())
}

/// A removed schedule (as JOC Cockpit deletes one): its planned orders waiting on the agent
/// for their instants are cancelled there and never run, the plan no longer shows it, and no
/// order of it is added again, while a schedule deployed after it is planned as usual.
#[tokio::test]
async fn process_a_removed_schedule_cancels_its_planned_orders_on_the_agent() -> Result<()> {
    let out = tempfile::tempdir()?;
    let ran_file = out.path().join("ran");
    let c = every_two_seconds(&ran_file, None, "").await?;
    let ahead = planned_on_the_agent_ahead(&c).await?;
    let ids: Vec<String> = ahead
        .iter()
        .filter_map(|o| o["id"].as_str().map(str::to_owned))
        .collect();

    let answer = c
        .post(
            "/deploy",
            &serde_json::json!({ "files": [], "removed": { "schedules": ["s"] } }),
        )
        .await?;
    let changes = answer["changes"].to_string();
    assert!(changes.contains("ScheduleRemoved s"), "{answer}");
    // Every order of `s` not started when it was removed.
    let of_s = |orders: &[Json]| -> Vec<(String, String)> {
        orders
            .iter()
            .filter_map(|o| {
                let id = o["id"].as_str().filter(|id| id.contains("#s@"))?;
                Some((id.to_owned(), o["state"].as_str().unwrap_or("").to_owned()))
            })
            .collect()
    };
    let removed_at = now_ms();
    let orders = c.orders().await?;
    let fresh: Vec<String> = of_s(&orders)
        .into_iter()
        .filter(|(_, state)| state == "fresh")
        .map(|(id, _)| id)
        .collect();
    // Those still more than a second from their instant cannot have started before the agent
    // got the cancel; one due sooner may have.
    let far: Vec<&String> = fresh
        .iter()
        .filter(|id| {
            orders.iter().any(|o| {
                o["id"] == id.as_str()
                    && o["scheduledFor"]
                        .as_i64()
                        .is_some_and(|t| t > removed_at + 1000)
            })
        })
        .collect();
    assert!(!far.is_empty(), "{fresh:?} (the first were {ids:?})");
    let ended = c
        .wait_states(&fresh, ENDED, Duration::from_secs(30))
        .await?;
    for o in &ended {
        if far.iter().any(|id| o["id"] == id.as_str()) {
            assert_eq!(o["state"], "cancelled", "{o}");
        }
    }
    let plan: Json = c.api.get_json(&c.url("/plan")).await?;
    assert!(
        plan["schedules"]
            .as_array()
            .is_some_and(|s| s.iter().all(|s| s["name"] != "s")),
        "{plan}"
    );
    assert!(
        plan["entries"]
            .as_array()
            .is_some_and(|e| e.iter().all(|e| e["schedule"] != "s")),
        "{plan}"
    );

    // Another schedule deployed now: once the planner has put its orders on the agent, it
    // has made its rounds after the removal without `s`.
    let before = of_s(&c.orders().await?);
    c.deploy(&[(
        "t.yaml",
        "schedule: t\nworkflow: w\ncron: \"*/2 * * * * *\"\n".to_owned(),
    )])
    .await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let orders = c.orders().await?;
        let t = orders
            .iter()
            .filter(|o| {
                o["id"].as_str().is_some_and(|id| id.contains("#t@"))
                    && o["holder"]["type"] == "agent"
            })
            .count();
        if t >= 2 {
            let mut now: Vec<String> = of_s(&orders).into_iter().map(|(id, _)| id).collect();
            let mut was: Vec<String> = before.iter().map(|(id, _)| id.clone()).collect();
            now.sort();
            was.sort();
            assert_eq!(now, was, "no order of `s` is added after its removal");
            break;
        }
        if Instant::now() > deadline {
            bail!("schedule t is not planned:\n{}", c.logs());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let lines = ran(&ran_file);
    assert!(
        far.iter().all(|id| !lines.contains(id)),
        "{far:?} must not run; ran {lines:?}"
    );
    // Removing it again: not deployed.
    let again = c
        .post(
            "/deploy",
            &serde_json::json!({ "files": [], "removed": { "schedules": ["s"] } }),
        )
        .await;
    assert!(
        again
            .as_ref()
            .is_err_and(|e| e.to_string().contains("not deployed")),
        "{again:?}"
    );
    Ok(())
}
