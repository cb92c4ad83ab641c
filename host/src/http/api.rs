//! The routes: the JSON API, `/metrics`, the dashboard, and the control endpoints.
//!
//! Invariant: every control endpoint (and keyed-state reads) checks the token first; a request
//! the job cannot take now gets a 409 or 503 that says why, never a hang: each waits only on an
//! event of the job (the checkpoint completing, the job ending) that the job's end also ends.

use super::App;
use crate::live::{CheckpointInfo, Outcome, Status, ms};
use crate::runtime::Command;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::SystemTime;

type Shared = State<Arc<App>>;

/// The largest component a swap may upload.
const MAX_COMPONENT: usize = 256 << 20;

pub fn router(app: Arc<App>) -> axum::Router {
    axum::Router::new()
        .route("/", get(dashboard))
        .route("/metrics", get(metrics))
        .route("/api/job", get(job))
        .route("/api/checkpoints", get(checkpoints).post(checkpoint))
        .route("/api/savepoints", post(savepoint))
        .route("/api/stop", post(stop))
        .route("/api/cancel", post(cancel))
        .route("/api/nodes/{uid}/state", get(state))
        .route(
            "/api/nodes/{uid}/swap",
            post(swap).layer(axum::extract::DefaultBodyLimit::max(MAX_COMPONENT)),
        )
        .fallback(|| async {
            error(
                StatusCode::NOT_FOUND,
                "no such endpoint: see docs/operations.md",
            )
        })
        .with_state(app)
}

/// A JSON error body: `{"error": "..."}`.
fn error(code: StatusCode, message: impl Into<String>) -> Response {
    (code, Json(json!({ "error": message.into() }))).into_response()
}

/// The 401 a request without the token gets, or nothing.
fn check_token(app: &App, headers: &HeaderMap) -> Option<Response> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    (!app.authorized(presented)).then(|| {
        error(
            StatusCode::UNAUTHORIZED,
            "this endpoint needs the API token: send `Authorization: Bearer <token>` (the CLI reads WEIR_HTTP_TOKEN)",
        )
    })
}

/// The 503 a request that needs the job running gets while it does not, or nothing; `then`
/// says what to do.
fn unless_running(live: &crate::live::Live, then: &str) -> Option<Response> {
    let status = live.status();
    (status != Status::Running).then(|| {
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the job is {status:?}, not running: {then}"),
        )
    })
}

/// The 404 a request about a node the job does not have gets, or nothing.
fn unless_node(live: &crate::live::Live, uid: &str) -> Option<Response> {
    (!live.nodes.iter().any(|n| n.uid == uid)).then(|| {
        error(
            StatusCode::NOT_FOUND,
            format!("the job has no node `{uid}`"),
        )
    })
}

async fn dashboard() -> Html<&'static str> {
    Html(include_str!("dashboard.html"))
}

async fn metrics(State(app): Shared) -> Response {
    match super::prometheus::encode(&app) {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            )],
            text,
        )
            .into_response(),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode the metrics: {e}"),
        ),
    }
}

/// The whole job: graph, status, metrics per node and subtask, checkpoint summary.
async fn job(State(app): Shared) -> Json<Value> {
    Json(job_view(&app))
}

pub fn job_view(app: &App) -> Value {
    let live = &app.control.live;
    let summary = live.summary();
    let metrics = live.metrics();
    let now = ms(SystemTime::now());
    let nodes: Vec<Value> = live
        .nodes
        .iter()
        .map(|n| {
            let m = metrics.iter().find(|m| m.uid == n.uid);
            let rates = app.rates.of(&n.uid);
            let watermark = m.and_then(|m| m.watermark());
            let subtasks: Vec<Value> = m
                .map(|m| {
                    m.subtasks()
                        .iter()
                        .enumerate()
                        .map(|(i, s)| {
                            let r = rates.subtasks.get(i).copied().unwrap_or_default();
                            json!({
                                "index": i,
                                "records_in": s.records_in(),
                                "records_out": s.records_out(),
                                "rate_in": r.rate_in,
                                "rate_out": r.rate_out,
                                "busy": r.busy,
                                "backpressure": r.backpressure,
                                "busy_seconds": s.busy().as_secs_f64(),
                                "backpressured_seconds": s.backpressured().as_secs_f64(),
                                "queued": s.queued(),
                                "queue_fill": s.queued() as f64 / live.channel_capacity.max(1) as f64,
                                "watermark": s.watermark(),
                                "memory_bytes": s.memory(),
                            })
                        })
                        .collect()
                })
                .unwrap_or_default();
            json!({
                "uid": n.uid,
                "kind": n.kind,
                "parallelism": n.parallelism,
                "plugin": n.plugin,
                "inputs": n.inputs,
                "records_in": m.map_or(0, |m| m.records_in()),
                "records_out": m.map_or(0, |m| m.records_out()),
                "rate_in": rates.node.rate_in,
                "rate_out": rates.node.rate_out,
                "busy": rates.node.busy,
                "backpressure": rates.node.backpressure,
                "late": m.map_or(0, |m| m.late()),
                "isolated": m.map_or(0, |m| m.isolated()),
                "watermark": watermark,
                "watermark_lag_ms": watermark.map(|w| (now as i64).saturating_sub(w)),
                "subtasks": subtasks,
            })
        })
        .collect();
    json!({
        "pipeline": live.pipeline,
        "job": live.job,
        "status": summary.status,
        "attempt": summary.attempt,
        "restarts": summary.restarts,
        "last_failure": summary.last_failure,
        "started_ms": ms(live.started),
        "attempt_started_ms": summary.attempt_started_ms,
        "now_ms": now,
        "channel_capacity": live.channel_capacity,
        "checkpoints": {
            "completed": summary.checkpoints_completed,
            "failed": summary.checkpoints_failed,
            "latest": summary.latest,
        },
        "nodes": nodes,
    })
}

async fn checkpoints(State(app): Shared) -> Json<Vec<CheckpointInfo>> {
    Json(app.control.live.checkpoints())
}

async fn checkpoint(State(app): Shared, headers: HeaderMap) -> Response {
    take(&app, &headers, false).await
}

async fn savepoint(State(app): Shared, headers: HeaderMap) -> Response {
    take(&app, &headers, true).await
}

/// Ask for a checkpoint (or savepoint) and answer once it is complete.
async fn take(app: &App, headers: &HeaderMap, savepoint: bool) -> Response {
    if let Some(denied) = check_token(app, headers) {
        return denied;
    }
    let live = &app.control.live;
    if let Some(not_now) = unless_running(live, "ask again once it runs") {
        return not_now;
    }
    let (reply, answer) = tokio::sync::oneshot::channel();
    if app
        .control
        .commands
        .send(Command::Checkpoint { savepoint, reply })
        .is_err()
    {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the job has ended");
    }
    let id = match answer.await {
        Ok(Ok(id)) => id,
        Ok(Err(why)) => return error(StatusCode::CONFLICT, why),
        Err(_) => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the job's attempt ended before it took the request (it failed, finished or is restarting): ask again",
            );
        }
    };
    match live.wait_checkpoint(id).await {
        Ok(info) => Json(info).into_response(),
        Err(why) => error(StatusCode::INTERNAL_SERVER_ERROR, why),
    }
}

#[derive(Deserialize)]
struct StopQuery {
    /// Take a savepoint first (default); `false` cancels at once.
    savepoint: Option<bool>,
}

/// Stop the job, with a savepoint unless `?savepoint=false`; answers once the job has ended.
async fn stop(State(app): Shared, headers: HeaderMap, Query(q): Query<StopQuery>) -> Response {
    if let Some(denied) = check_token(&app, &headers) {
        return denied;
    }
    if !q.savepoint.unwrap_or(true) {
        return cancel_now(&app).await;
    }
    let live = &app.control.live;
    let asked = ms(SystemTime::now());
    app.control
        .stop_asked
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = app.control.stop.send(true);
    let status = live.wait_end().await;
    let savepoint =
        live.checkpoints().into_iter().rev().find(|c| {
            c.savepoint && c.outcome == Outcome::Completed && c.started_ms + 1000 >= asked
        });
    let code = if status == Status::Finished && savepoint.is_some() {
        StatusCode::OK
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    (
        code,
        Json(json!({
            "status": status,
            "savepoint": savepoint,
            "last_failure": live.summary().last_failure,
        })),
    )
        .into_response()
}

async fn cancel(State(app): Shared, headers: HeaderMap) -> Response {
    if let Some(denied) = check_token(&app, &headers) {
        return denied;
    }
    cancel_now(&app).await
}

async fn cancel_now(app: &App) -> Response {
    let live = &app.control.live;
    live.cancel_requested();
    let _ = app.control.commands.send(Command::Cancel);
    let status = live.wait_end().await;
    Json(json!({ "status": status })).into_response()
}

#[derive(Deserialize)]
struct StateQuery {
    /// One key (text).
    key: Option<String>,
    /// Or every key with this prefix (text), at most `limit`.
    prefix: Option<String>,
    limit: Option<usize>,
}

/// Keyed state of a running operator: one key, or a scan by prefix.
async fn state(
    State(app): Shared,
    headers: HeaderMap,
    Path(uid): Path<String>,
    Query(q): Query<StateQuery>,
) -> Response {
    if let Some(denied) = check_token(&app, &headers) {
        return denied;
    }
    let Some(registry) = &app.control.keyed else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "this job keeps no queryable keyed state (checkpointing is off)",
        );
    };
    if let Some(missing) = unless_node(&app.control.live, &uid) {
        return missing;
    }
    let request = crate::keyed::live::Request {
        node: uid,
        key: q.key.map(String::into_bytes),
        prefix: q.prefix.unwrap_or_default().into_bytes(),
        limit: q.limit.unwrap_or(100),
    };
    let registry = registry.clone();
    let found = tokio::task::spawn_blocking(move || registry.answer(&request)).await;
    match found {
        Ok(Ok(found)) => {
            let entries: Vec<Value> = found
                .into_iter()
                .flat_map(|(key, held)| {
                    let key = String::from_utf8_lossy(&key).into_owned();
                    held.into_iter().map(move |h| {
                        json!({
                            "key": key,
                            "state": h.state,
                            "map_key": h.map_key.map(|k| String::from_utf8_lossy(&k).into_owned()),
                            "value": std::str::from_utf8(&h.value).ok(),
                            "value_hex": h.value.iter().map(|b| format!("{b:02x}")).collect::<String>(),
                        })
                    })
                })
                .collect();
            Json(entries).into_response()
        }
        Ok(Err(why)) => error(StatusCode::NOT_FOUND, why),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// Swap node `uid`'s component for the one in the body (see [`crate::swap`]); answers once the
/// new build completed a checkpoint, or why it did not take over (the old one then runs on).
async fn swap(
    State(app): Shared,
    headers: HeaderMap,
    Path(uid): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    if let Some(denied) = check_token(&app, &headers) {
        return denied;
    }
    let Some(prepare) = app.control.swap.clone() else {
        return error(
            StatusCode::CONFLICT,
            "a swap hands the state over at a savepoint: turn checkpointing on ([checkpoint] enabled = true)",
        );
    };
    let live = &app.control.live;
    if let Some(not_now) = unless_running(live, "swap once it runs") {
        return not_now;
    }
    if let Some(missing) = unless_node(live, &uid) {
        return missing;
    }
    let name = uid.clone();
    let prepared = tokio::task::spawn_blocking(move || prepare(&name, &body)).await;
    let new = match prepared {
        Ok(Ok(p)) => p,
        Ok(Err(why)) => return error(StatusCode::UNPROCESSABLE_ENTITY, why),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let (reply, outcome) = tokio::sync::oneshot::channel();
    let requested = live.request_swap(crate::live::SwapInFlight::new(uid, new, reply));
    if let Err(why) = requested {
        return error(StatusCode::CONFLICT, why);
    }
    // The swap happens at a savepoint: the job stops on one and resumes from it.
    let _ = app.control.stop.send(true);
    match outcome.await {
        Ok(Ok(done)) => Json(done).into_response(),
        Ok(Err(why)) => error(StatusCode::UNPROCESSABLE_ENTITY, why),
        Err(_) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the job ended before the swap completed",
        ),
    }
}
