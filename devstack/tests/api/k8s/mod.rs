//! `k8s/overlays`: each overlay renders with `kubectl kustomize`, passes `kubernetes-validate
//! --strict`, and holds what the cluster relies on (see [`violations`]): a schema says a manifest
//! is well formed, not that its pods are probed, bounded, locked down, scaled, and fenced off.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use serde::Deserialize;
use serde_json::{Value, json};

/// The oldest Kubernetes the README supports (the preStop `sleep` action is on by default from
/// 1.30): a field newer than that fails here instead of on an older cluster.
const KUBERNETES_VERSION: &str = "1.30.0";

/// The Prometheus Operator's kinds (the monitoring Component): kubernetes-validate has no schema
/// for them and only warns. Any other warning is a kind it could not check, such as a misspelt
/// apiVersion, and fails the test.
const CUSTOM_KINDS: [(&str, &str); 2] =
    [("monitoring.coreos.com/v1", "PrometheusRule"), ("monitoring.coreos.com/v1", "ServiceMonitor")];

const NAME: &str = "app.kubernetes.io/name";
/// The services trust the user id these forward, so no other pod may reach a gRPC port.
const CALLERS: [&str; 2] = ["gateway", "payment-svc"];
const DEPLOYMENTS: [&str; 5] = ["gateway", "inventory-svc", "coupon-svc", "point-svc", "payment-svc"];

fn workspace_root() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    path.canonicalize().unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

fn output(out: &Output) -> String {
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    format!("{}\n--- stdout\n{stdout}\n--- stderr\n{stderr}", out.status)
}

/// Runs `program` in the workspace root with `input` on its stdin; `install` says where to get it.
fn run(program: &str, args: &[&str], input: &str, install: &str) -> Output {
    let spawned = Command::new(program)
        .args(args)
        .current_dir(workspace_root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => panic!("{program} not found: {install}"),
        Err(err) => panic!("{program} did not start: {err}"),
    };
    // Both read all of stdin before they print, so writing it first cannot deadlock.
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap_or_else(|err| panic!("{program}'s stdin: {err}"));
    child.wait_with_output().unwrap_or_else(|err| panic!("{program}: {err}"))
}

fn render(overlay: &str) -> String {
    let dir = format!("k8s/overlays/{overlay}");
    // Debian bookworm's kubernetes-client is 1.20, whose kustomize cannot read these overlays.
    let install = "Debian package kubernetes-client, if its kubectl is 1.27+ (kustomize v5)";
    let out = run("kubectl", &["kustomize", &dir], "", install);
    assert!(out.status.success(), "kubectl kustomize {dir} (needs kubectl 1.27+, kustomize v5): {}", output(&out));
    String::from_utf8(out.stdout).expect("kubectl kustomize prints UTF-8")
}

fn documents(yaml: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(yaml)
        .map(|doc| Value::deserialize(doc).unwrap_or_else(|err| panic!("rendered YAML: {err}")))
        .filter(|doc| !doc.is_null())
        .collect()
}

/// `kubernetes-validate --strict` on the rendered `yaml`; the error lists what it rejected or
/// could not check. Its output is matched against `docs`, so an object it skipped is caught too.
fn validate(yaml: &str, docs: &[Value]) -> Result<(), String> {
    let install = "python3 -m pip install kubernetes-validate (PyPI package)";
    let out = run("kubernetes-validate", &["--strict", "-k", KUBERNETES_VERSION, "-"], yaml, install);
    let text = String::from_utf8_lossy(&out.stdout);
    let mut problems: Vec<String> = Vec::new();
    if !out.status.success() {
        problems.push(format!("kubernetes-validate failed: {}", output(&out)));
    }
    let skipped: Vec<&str> = text.lines().filter(|l| l.starts_with("WARN")).collect();
    let mut custom = 0;
    let version = KUBERNETES_VERSION.rsplit_once('.').unwrap().0;
    for doc in docs {
        let (api, kind) = (doc["apiVersion"].as_str().unwrap_or("?"), doc["kind"].as_str().unwrap_or("?"));
        if CUSTOM_KINDS.contains(&(api, kind)) {
            custom += 1;
        } else {
            let passed = format!("passed for resource {}/{} against version {version}", kind.to_lowercase(), name(doc));
            if !text.lines().any(|l| l.starts_with("INFO") && l.ends_with(&passed)) {
                problems.push(format!("{} ({api}) was not validated", id(doc)));
            }
        }
    }
    let unknown = |l: &&&str| !CUSTOM_KINDS.iter().any(|(a, k)| l.contains(&format!("kind {k} with api version {a} ")));
    problems.extend(skipped.iter().filter(unknown).map(|l| format!("no schema, so not checked: {l}")));
    if skipped.len() != custom {
        problems.push(format!("{custom} custom resources, but {} skipped: {skipped:#?}", skipped.len()));
    }
    if problems.is_empty() { Ok(()) } else { Err(problems.join("\n")) }
}

fn name(doc: &Value) -> &str {
    doc["metadata"]["name"].as_str().unwrap_or("<unnamed>")
}

fn id(doc: &Value) -> String {
    format!("{} {}", doc["kind"].as_str().unwrap_or("<no kind>"), name(doc))
}

fn same_namespace(a: &Value, b: &Value) -> bool {
    a["metadata"]["namespace"] == b["metadata"]["namespace"]
}

/// Whether `selector` (`matchLabels` and `matchExpressions`, all of them) selects a pod with
/// `labels`, as the API server decides. An empty selector selects every pod, a missing one none.
fn selects(selector: &Value, labels: &Value) -> bool {
    let Some(selector) = selector.as_object() else { return false };
    let label = |key: &str| labels[key].as_str();
    let by_labels = selector.get("matchLabels").and_then(Value::as_object).into_iter().flatten();
    let by_expressions = selector.get("matchExpressions").and_then(Value::as_array).into_iter().flatten();
    by_labels.into_iter().all(|(key, value)| value.as_str().is_some_and(|v| label(key) == Some(v)))
        && by_expressions.into_iter().all(|e| {
            let values: Vec<&str> = e["values"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            match (e["operator"].as_str(), label(e["key"].as_str().unwrap_or_default())) {
                (Some("In"), Some(v)) => values.contains(&v),
                (Some("NotIn"), v) => v.is_none_or(|v| !values.contains(&v)),
                (Some("Exists"), v) => v.is_some(),
                (Some("DoesNotExist"), v) => v.is_none(),
                _ => false,
            }
        })
}

/// Whether every pod `selector` selects has `key` set to one of `allowed`. Only a selector that
/// pins the key (`matchLabels`, or `In` a subset) proves it; anything looser could admit others.
fn confines(selector: &Value, key: &str, allowed: &[&str]) -> bool {
    let is_allowed = |v: &Value| v.as_str().is_some_and(|v| allowed.contains(&v));
    is_allowed(&selector["matchLabels"][key])
        || selector["matchExpressions"].as_array().into_iter().flatten().any(|e| {
            e["key"] == key && e["operator"] == "In" && e["values"].as_array().is_some_and(|v| v.iter().all(is_allowed))
        })
}

fn pod_labels(deployment: &Value) -> &Value {
    &deployment["spec"]["template"]["metadata"]["labels"]
}

fn containers(deployment: &Value) -> impl Iterator<Item = (&'static str, &Value)> {
    let spec = &deployment["spec"]["template"]["spec"];
    let of = |list: &str, what: &'static str| spec[list].as_array().into_iter().flatten().map(move |c| (what, c));
    of("containers", "container").chain(of("initContainers", "init container"))
}

fn container_port(deployment: &Value, port_name: &str) -> Option<u64> {
    let ports = containers(deployment).flat_map(|(_, c)| c["ports"].as_array().into_iter().flatten());
    ports.into_iter().find(|p| p["name"] == port_name).and_then(|p| p["containerPort"].as_u64())
}

/// Whether a rule's `ports` let TCP reach `port` (by number, range or name); none means all.
fn opens(ports: &Value, port: u64, port_name: &str) -> bool {
    let Some(list) = ports.as_array().filter(|l| !l.is_empty()) else { return true };
    list.iter().any(|p| {
        let tcp = p["protocol"].as_str().is_none_or(|proto| proto == "TCP");
        let first = p["port"].as_u64();
        let to = p["port"].is_null()
            || p["port"] == port_name
            || first == Some(port)
            || first.zip(p["endPort"].as_u64()).is_some_and(|(first, end)| (first..=end).contains(&port));
        tcp && to
    })
}

/// The ingress rules of the policies that govern `deployment`'s pods.
fn ingress_rules<'a>(policies: &[&'a Value], deployment: &Value) -> Vec<(&'a Value, &'a Value)> {
    let ingress_type = |p: &Value| match p["spec"]["policyTypes"].as_array() {
        Some(types) => types.iter().any(|t| t == "Ingress"),
        None => true,
    };
    let governing = policies.iter().filter(|p| {
        same_namespace(p, deployment) && ingress_type(p) && selects(&p["spec"]["podSelector"], pod_labels(deployment))
    });
    governing.flat_map(|p| p["spec"]["ingress"].as_array().into_iter().flatten().map(move |rule| (*p, rule))).collect()
}

/// Whether a rule's `from` admits `deployment`'s pods to `policy`'s pods. Of a namespace only its
/// automatic name label is known, and an `ipBlock` is not taken to cover pod IPs.
fn admits(policy: &Value, from: &Value, deployment: &Value) -> bool {
    let Some(peers) = from.as_array().filter(|f| !f.is_empty()) else { return true };
    let namespace = json!({"kubernetes.io/metadata.name": deployment["metadata"]["namespace"]});
    peers.iter().any(|peer| {
        let in_namespace = match &peer["namespaceSelector"] {
            Value::Null => same_namespace(policy, deployment),
            selector => selects(selector, &namespace),
        };
        let pods = &peer["podSelector"];
        peer["ipBlock"].is_null() && in_namespace && (pods.is_null() || selects(pods, pod_labels(deployment)))
    })
}

fn container_violations(deployment: &Value, found: &mut Vec<String>) {
    let pod_non_root = deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] == true;
    for (what, c) in containers(deployment) {
        let mut missing: Vec<String> = Vec::new();
        // The API rejects probes on init containers, except sidecars (restartPolicy: Always).
        if what == "container" || c["restartPolicy"] == "Always" {
            missing.extend(
                ["livenessProbe", "readinessProbe"].iter().filter(|p| !c[**p].is_object()).map(|p| p.to_string()),
            );
        }
        for (bound, resource) in [("limits", "cpu"), ("limits", "memory"), ("requests", "cpu"), ("requests", "memory")]
        {
            if c["resources"][bound][resource].is_null() {
                missing.push(format!("resources.{bound}.{resource}"));
            }
        }
        let security = &c["securityContext"];
        if !(security["runAsNonRoot"] == true || (pod_non_root && security["runAsNonRoot"] != false)) {
            missing.push("runAsNonRoot: true (pod or container securityContext)".into());
        }
        if security["readOnlyRootFilesystem"] != true {
            missing.push("securityContext.readOnlyRootFilesystem: true".into());
        }
        if security["allowPrivilegeEscalation"] != false {
            missing.push("securityContext.allowPrivilegeEscalation: false".into());
        }
        if !missing.is_empty() {
            let container = c["name"].as_str().unwrap_or("<unnamed>");
            found.push(format!("{} {what} {container}: no {}", id(deployment), missing.join(", ")));
        }
    }
}

fn network_violations(d: &Value, deployments: &[&Value], policies: &[&Value], found: &mut Vec<String>) {
    let rules = ingress_rules(policies, d);
    let (dep, deployment_name) = (id(d), name(d));
    if let Some(port) = container_port(d, "grpc") {
        // Its callers, as the manifests wire them: whoever has its address in an env var.
        let address = format!("http://{deployment_name}:{port}");
        let env = |c: &Value| c["env"].as_array().into_iter().flatten().any(|e| e["value"] == address.as_str());
        let callers: Vec<&&Value> =
            deployments.iter().filter(|c| same_namespace(c, d) && containers(c).any(|(_, c)| env(c))).collect();
        if callers.is_empty() {
            found.push(format!("{dep}: no Deployment's env names {address}, so its callers are unknown"));
        }
        for caller in callers {
            let reached =
                rules.iter().any(|(p, rule)| opens(&rule["ports"], port, "grpc") && admits(p, &rule["from"], caller));
            if !reached {
                found.push(format!(
                    "{dep}: no NetworkPolicy lets {} (which calls it) reach grpc port {port}",
                    id(caller)
                ));
            }
        }
        for (policy, rule) in rules.iter().filter(|(_, rule)| opens(&rule["ports"], port, "grpc")) {
            let from = rule["from"].as_array().filter(|f| !f.is_empty());
            let Some(from) = from else {
                found.push(format!("{}: lets any source reach {dep}'s grpc port {port}", id(policy)));
                continue;
            };
            // Only pods of this namespace, and only pods whose name label is pinned to a caller.
            let local = |peer: &Value| peer["namespaceSelector"].is_null() && peer["ipBlock"].is_null();
            for peer in from.iter().filter(|peer| !(local(peer) && confines(&peer["podSelector"], NAME, &CALLERS))) {
                found.push(format!(
                    "{}: peer {peer} reaches {dep}'s grpc port {port}; only {NAME} in {CALLERS:?} may",
                    id(policy)
                ));
            }
        }
    } else if let Some(port) = container_port(d, "http") {
        let open = rules
            .iter()
            .any(|(_, r)| opens(&r["ports"], port, "http") && r["from"].as_array().is_none_or(Vec::is_empty));
        if !open {
            found.push(format!("{dep}: no NetworkPolicy lets ingress from anywhere reach http port {port}"));
        }
    } else {
        found.push(format!("{dep}: no container port named grpc or http, so its ingress cannot be checked"));
    }
}

/// What an overlay's rendered objects break, one message per object and problem.
fn violations(docs: &[Value]) -> Vec<String> {
    let mut found = Vec::new();
    let of_kind = |kind: &str| docs.iter().filter(|d| d["kind"] == kind).collect::<Vec<_>>();
    let (deployments, services, policies) = (of_kind("Deployment"), of_kind("Service"), of_kind("NetworkPolicy"));
    let (hpas, pdbs) = (of_kind("HorizontalPodAutoscaler"), of_kind("PodDisruptionBudget"));
    let rendered: BTreeSet<&str> = deployments.iter().map(|d| name(d)).collect();
    if rendered != BTreeSet::from(DEPLOYMENTS) {
        found.push(format!("Deployments {rendered:?}, expected {DEPLOYMENTS:?}"));
    }

    let empty = |v: &Value| {
        v.is_null() || v.as_object().is_some_and(|o| o.is_empty()) || v.as_array().is_some_and(|a| a.is_empty())
    };
    let deny_all = policies.iter().any(|p| {
        let (spec, types) = (&p["spec"], p["spec"]["policyTypes"].as_array().cloned().unwrap_or_default());
        spec["podSelector"].as_object().is_some_and(|s| s.values().all(empty))
            && ["Ingress", "Egress"].iter().all(|t| types.contains(&json!(t)))
            && empty(&spec["ingress"])
            && empty(&spec["egress"])
    });
    if !deny_all {
        found.push("no default-deny NetworkPolicy (empty podSelector, Ingress and Egress, no rules)".into());
    }

    for d in &deployments {
        container_violations(d, &mut found);
        let target = |h: &&&Value| {
            h["spec"]["scaleTargetRef"]["kind"] == "Deployment" && h["spec"]["scaleTargetRef"]["name"] == name(d)
        };
        if !hpas.iter().filter(|h| same_namespace(h, d)).any(|h| target(&h)) {
            found.push(format!("{}: no HorizontalPodAutoscaler whose scaleTargetRef names it", id(d)));
        }
        if !pdbs.iter().any(|p| same_namespace(p, d) && selects(&p["spec"]["selector"], pod_labels(d))) {
            found.push(format!("{}: no PodDisruptionBudget whose selector matches its pod labels", id(d)));
        }
        network_violations(d, &deployments, &policies, &mut found);
        if container_port(d, "grpc").is_some() && !services.iter().any(|s| same_namespace(s, d) && name(s) == name(d)) {
            found.push(format!("{}: serves gRPC but has no Service of its name", id(d)));
        }
    }
    let grpc_port = |p: &Value| p["appProtocol"] == "grpc" || p["name"] == "grpc";
    for s in services {
        let grpc = name(s).ends_with("-svc") || s["spec"]["ports"].as_array().into_iter().flatten().any(grpc_port);
        if grpc && s["spec"]["clusterIP"] != "None" {
            found.push(format!("{}: a gRPC Service that is not headless (clusterIP: None)", id(s)));
        }
    }
    found
}

fn check(overlay: &str) {
    let yaml = render(overlay);
    let docs = documents(&yaml);
    validate(&yaml, &docs).unwrap_or_else(|err| panic!("overlays/{overlay}, kubernetes-validate:\n{err}"));
    let found = violations(&docs);
    assert!(found.is_empty(), "overlays/{overlay} breaks:\n{}", found.join("\n"));
}

#[test]
fn the_dev_overlay_renders_validates_and_holds_the_invariants() {
    check("dev");
}

#[test]
fn the_prod_overlay_renders_validates_and_holds_the_invariants() {
    check("prod");
}

mod breakages;
