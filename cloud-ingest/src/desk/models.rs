//! The model registry through the API: the versions and who is champion or
//! challenger, registering an artifact, the challenger's gate, promotion past it (or over
//! it, with a reason), and rollback to any registered version. The pages call the same
//! functions. Routes are listed (with their access) in [`super::api::ROUTES`].

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use super::api::{query, Answer, ApiError, DeskState, ProblemDoc};
use super::auth::User;
use crate::registry::gate::Gate;
use crate::registry::{self, Promotion, RegistryError};
use crate::store::model_versions::{Aliases, ModelChange, ModelVersion};

/// Changes listed with the registry.
const CHANGES: u32 = 50;

/// The registry as the desk shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Registry {
    /// Where `champion` and `challenger` point.
    pub aliases: Aliases,
    /// The version this replica scores with now (the champion once it has caught up).
    pub in_force: String,
    /// Every registered version, newest first.
    pub versions: Vec<ModelVersion>,
    /// The latest changes, newest first.
    pub changes: Vec<ModelChange>,
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        let detail = e.to_string();
        match e {
            RegistryError::Store(e) => ApiError::store(e),
            RegistryError::Artifact(_) | RegistryError::NoReason => ApiError::unprocessable(detail),
            RegistryError::Unknown(_) => ApiError::new(StatusCode::NOT_FOUND, "not found", &detail),
            RegistryError::GateFailed(gate) => {
                let mut err = ApiError::new(StatusCode::CONFLICT, "gate failed", &detail);
                err.extra = Some(json!({ "gate": gate }));
                err
            }
            RegistryError::NoChallenger
            | RegistryError::Stale { .. }
            | RegistryError::Champion(_) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", &detail)
            }
        }
    }
}

/// The registry now.
pub(crate) async fn registry_of(s: &DeskState) -> Result<Registry, ApiError> {
    let store = &s.store;
    Ok(Registry {
        aliases: store.model_aliases().await.map_err(ApiError::store)?,
        in_force: s.model.current().version.clone(),
        versions: store.model_versions().await.map_err(ApiError::store)?,
        changes: store
            .model_changes(CHANGES)
            .await
            .map_err(ApiError::store)?,
    })
}

/// The registered versions, the aliases and the latest changes.
#[utoipa::path(get, path = "/api/v1/models", security(("bearer" = [])),
    responses((status = 200, body = Registry), (status = 401, body = ProblemDoc),
        (status = 403, body = ProblemDoc)))]
pub(crate) async fn list(State(s): State<DeskState>) -> Answer {
    Ok(Json(registry_of(&s).await?).into_response())
}

/// How an artifact is registered.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct RegisterParams {
    /// Also make it the challenger.
    challenger: Option<bool>,
}

/// Registers a model artifact (the JSON `models train` writes), checked against this
/// build's feature schema; 201 when new, 200 when registered already with the same
/// artifact. `?challenger=true` also makes it the challenger.
#[utoipa::path(post, path = "/api/v1/models", params(RegisterParams),
    request_body(content = Object, description = "a model artifact", content_type = "application/json"),
    security(("bearer" = [])),
    responses((status = 201, body = ModelVersion), (status = 200, body = ModelVersion),
        (status = 401, body = ProblemDoc), (status = 403, body = ProblemDoc),
        (status = 409, description = "the version is registered with another artifact, or is the champion", body = ProblemDoc),
        (status = 422, description = "not an artifact this build can score with", body = ProblemDoc)))]
pub(crate) async fn register(
    State(s): State<DeskState>,
    u: Option<axum::Extension<User>>,
    q: Result<Query<RegisterParams>, axum::extract::rejection::QueryRejection>,
    body: Bytes,
) -> Answer {
    let user = u.map(|u| u.0).expect("the guard signs every request in");
    let as_challenger = query(q)?.challenger.unwrap_or(false);
    let now = s.clock.now().0;
    let (artifact, new) = registry::register(&s.store, &body, &user.name, now).await?;
    if as_challenger {
        registry::set_challenger(&s.store, &s.model, &user.name, Some(&artifact.version), now)
            .await?;
    }
    let versions = s.store.model_versions().await.map_err(ApiError::store)?;
    let v = versions
        .into_iter()
        .find(|v| v.version == artifact.version)
        .ok_or_else(|| RegistryError::Unknown(artifact.version.clone()))?;
    let status = if new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(v)).into_response())
}

/// The challenger's gate, measured now on the outcomes labelled since it started.
#[utoipa::path(get, path = "/api/v1/models/gate", security(("bearer" = [])),
    responses((status = 200, body = Gate), (status = 401, body = ProblemDoc),
        (status = 403, body = ProblemDoc),
        (status = 404, description = "no challenger is set", body = ProblemDoc)))]
pub(crate) async fn gate(State(s): State<DeskState>) -> Answer {
    let g = registry::measure_gate(&s.store, &s.model, &s.gate, s.clock.now().0)
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not found", "no challenger is set"))?;
    Ok(Json(g).into_response())
}

/// Sets the challenger.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetChallenger {
    /// A registered version, or null to clear the challenger.
    #[serde(deserialize_with = "Option::deserialize")]
    pub version: Option<String>,
}

/// Rolls the champion back.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rollback {
    /// A registered version, not the champion.
    pub version: String,
    /// Why, recorded.
    #[serde(default)]
    pub reason: Option<String>,
}

fn body<T: serde::de::DeserializeOwned>(bytes: &[u8], shape: &str) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::unprocessable(format!("{e}; {shape}")))
}

/// Sets (or with `"version": null` clears) the challenger: from now on every device the
/// champion scores is scored by it too, and its gate counts outcomes from now.
#[utoipa::path(post, path = "/api/v1/models/challenger", request_body = SetChallenger,
    security(("bearer" = [])),
    responses((status = 200, body = ModelChange), (status = 401, body = ProblemDoc),
        (status = 403, body = ProblemDoc), (status = 404, body = ProblemDoc),
        (status = 409, description = "the version is the champion, or there is no challenger to clear", body = ProblemDoc),
        (status = 422, body = ProblemDoc)))]
pub(crate) async fn set_challenger(
    State(s): State<DeskState>,
    u: Option<axum::Extension<User>>,
    bytes: Bytes,
) -> Answer {
    let user = u.map(|u| u.0).expect("the guard signs every request in");
    let b: SetChallenger = body(&bytes, "the body is {\"version\": \"…\" | null}")?;
    let change = registry::set_challenger(
        &s.store,
        &s.model,
        &user.name,
        b.version.as_deref(),
        s.clock.now().0,
    )
    .await?;
    Ok(Json(change).into_response())
}

/// Promotes the challenger named (as the caller saw it) to champion if it passes its
/// gate; with `"override": true` and a reason, even if it does not. A refused
/// promotion is a 409 whose `gate` says why.
#[utoipa::path(post, path = "/api/v1/models/promote", request_body = Promotion,
    security(("bearer" = [])),
    responses((status = 200, body = ModelChange), (status = 401, body = ProblemDoc),
        (status = 403, body = ProblemDoc),
        (status = 409, description = "the gate failed, or the challenger changed", body = ProblemDoc),
        (status = 422, body = ProblemDoc)))]
pub(crate) async fn promote(
    State(s): State<DeskState>,
    u: Option<axum::Extension<User>>,
    bytes: Bytes,
) -> Answer {
    let user = u.map(|u| u.0).expect("the guard signs every request in");
    let p: Promotion = body(
        &bytes,
        "the body is {\"challenger\": \"…\", \"override\": false, \"reason\": \"…\"}",
    )?;
    let change =
        registry::promote(&s.store, &s.model, &s.gate, &user.name, &p, s.clock.now().0).await?;
    Ok(Json(change).into_response())
}

/// Makes a registered version champion again.
#[utoipa::path(post, path = "/api/v1/models/rollback", request_body = Rollback,
    security(("bearer" = [])),
    responses((status = 200, body = ModelChange), (status = 401, body = ProblemDoc),
        (status = 403, body = ProblemDoc), (status = 404, body = ProblemDoc),
        (status = 409, description = "it is the champion already", body = ProblemDoc),
        (status = 422, body = ProblemDoc)))]
pub(crate) async fn rollback(
    State(s): State<DeskState>,
    u: Option<axum::Extension<User>>,
    bytes: Bytes,
) -> Answer {
    let user = u.map(|u| u.0).expect("the guard signs every request in");
    let r: Rollback = body(
        &bytes,
        "the body is {\"version\": \"…\", \"reason\": \"…\"}",
    )?;
    let change = registry::rollback(
        &s.store,
        &s.model,
        &user.name,
        &r.version,
        r.reason.as_deref(),
        s.clock.now().0,
    )
    .await?;
    Ok(Json(change).into_response())
}
