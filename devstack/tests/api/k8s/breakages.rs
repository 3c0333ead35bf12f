//! The checks themselves checked: label selectors read as the API server reads them, every
//! invariant failing on a manifest that breaks it, and the validator refusing what it should.

use super::*;

#[test]
fn selects_and_confines_read_label_selectors_as_the_api_server_does() {
    let pod = json!({"app": "gateway", "tier": "edge"});
    let cases = [
        (json!({}), true),
        (Value::Null, false),
        (json!({"matchLabels": {"app": "gateway"}}), true),
        (json!({"matchLabels": {"app": "gateway", "zone": "a"}}), false),
        (json!({"matchLabels": {"zone": null}}), false),
        (json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["gateway", "x"]}]}), true),
        (json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["x"]}]}), false),
        (json!({"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}), false),
        (json!({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["gateway"]}]}), false),
        (json!({"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}), true),
        (json!({"matchExpressions": [{"key": "tier", "operator": "Exists"}]}), true),
        (json!({"matchExpressions": [{"key": "zone", "operator": "Exists"}]}), false),
        (json!({"matchExpressions": [{"key": "zone", "operator": "DoesNotExist"}]}), true),
        (json!({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}), false),
        (json!({"matchExpressions": [{"key": "tier", "operator": "Gt", "values": ["1"]}]}), false),
        // Both parts must hold.
        (
            json!({"matchLabels": {"app": "gateway"}, "matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}),
            false,
        ),
    ];
    for (selector, expected) in cases {
        assert_eq!(selects(&selector, &pod), expected, "{selector} on {pod}");
    }
    let allowed = ["gateway", "payment-svc"];
    let confined = [
        (json!({"matchLabels": {"app": "gateway"}}), true),
        (json!({"matchExpressions": [{"key": "app", "operator": "In", "values": allowed}]}), true),
        (json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["gateway", "x"]}]}), false),
        (json!({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["x"]}]}), false),
        (json!({"matchLabels": {"tier": "edge"}}), false),
        (json!({}), false),
    ];
    for (selector, expected) in confined {
        assert_eq!(confines(&selector, "app", &allowed), expected, "{selector} confines app to {allowed:?}");
    }
}

/// One change per line, `kind name pointer value => what must be reported`: the JSON value goes
/// where the JSON pointer says; null stands for a deleted field, which every check reads alike.
const BREAKS: &str = r#"
Deployment gateway /spec/template/spec/containers/0/livenessProbe null => Deployment gateway container gateway: no livenessProbe
Deployment coupon-svc /spec/template/spec/containers/0/readinessProbe null => container coupon-svc: no readinessProbe
Deployment point-svc /spec/template/spec/containers/0/resources/limits/cpu null => point-svc: no resources.limits.cpu
Deployment point-svc /spec/template/spec/containers/0/resources/requests/memory null => point-svc: no resources.requests.memory
Deployment payment-svc /spec/template/spec/securityContext/runAsNonRoot false => container payment-svc: no runAsNonRoot: true
Deployment inventory-svc /spec/template/spec/containers/0/securityContext/runAsNonRoot false => inventory-svc: no runAsNonRoot
Deployment gateway /spec/template/spec/containers/0/securityContext/readOnlyRootFilesystem false => gateway: no securityContext.readOnlyRootFilesystem: true
Deployment coupon-svc /spec/template/spec/containers/0/securityContext/allowPrivilegeEscalation null => coupon-svc: no securityContext.allowPrivilegeEscalation: false
Deployment point-svc /spec/template/spec/initContainers [{"name":"init"}] => Deployment point-svc init container init: no resources.limits.cpu
Service inventory-svc /spec/clusterIP null => Service inventory-svc: a gRPC Service that is not headless
HorizontalPodAutoscaler coupon-svc /spec/scaleTargetRef/name "coupon" => Deployment coupon-svc: no HorizontalPodAutoscaler
PodDisruptionBudget gateway /spec/selector/matchLabels/app.kubernetes.io~1name "gw" => Deployment gateway: no PodDisruptionBudget
NetworkPolicy default-deny /spec/podSelector {"matchLabels":{"a":"b"}} => no default-deny NetworkPolicy
NetworkPolicy default-deny /spec/policyTypes ["Ingress"] => no default-deny NetworkPolicy
NetworkPolicy gateway /spec/ingress/0/ports/0/port 8081 => Deployment gateway: no NetworkPolicy lets ingress from anywhere reach http port 8080
NetworkPolicy participants /spec/ingress/0/from/0/podSelector/matchExpressions/0/values ["gateway"] => Deployment point-svc: no NetworkPolicy lets Deployment payment-svc (which calls it) reach grpc port 50053
NetworkPolicy participants /spec/ingress/1/ports [{"port":50051}] => NetworkPolicy participants: peer {"namespaceSelector":{}} reaches Deployment inventory-svc's grpc port 50051
NetworkPolicy participants /spec/ingress/0/from/0/podSelector/matchExpressions/0/operator "NotIn" => reaches Deployment coupon-svc's grpc port 50052; only app.kubernetes.io/name in
NetworkPolicy payment /spec/ingress/0/from null => NetworkPolicy payment: lets any source reach Deployment payment-svc's grpc port 50054
NetworkPolicy payment /spec/ingress/0/from/0/ipBlock {"cidr":"10.0.0.0/8"} => NetworkPolicy payment: peer {"ipBlock"
Service inventory-svc /metadata/name "inventory" => Deployment inventory-svc: serves gRPC but has no Service of its name
Deployment coupon-svc /spec/template/spec/containers/0/ports/0/containerPort 50099 => Deployment coupon-svc: no Deployment's env names http://coupon-svc:50099
Deployment gateway /metadata/name "gw" => Deployments {"coupon-svc", "gw", "inventory-svc", "payment-svc", "point-svc"}, expected
"#;

fn object<'a>(docs: &'a mut [Value], kind: &str, object_name: &str) -> &'a mut Value {
    let found = docs.iter_mut().find(|d| d["kind"] == kind && name(d) == object_name);
    found.unwrap_or_else(|| panic!("no {kind} {object_name}"))
}

/// Puts `value` where `pointer` (RFC 6901) says, adding the last key if it is new.
fn set(doc: &mut Value, pointer: &str, value: Value) {
    let (parent, key) = pointer.rsplit_once('/').expect("a JSON pointer");
    let key = key.replace("~1", "/").replace("~0", "~");
    match doc.pointer_mut(parent).unwrap_or_else(|| panic!("no {parent}")) {
        Value::Array(items) => items[key.parse::<usize>().expect("an array index")] = value,
        parent => parent[key.as_str()] = value,
    }
}

/// Each check on its own: one change to the rendered dev overlay, and what it must report.
#[test]
fn every_invariant_fails_on_a_manifest_that_breaks_it() {
    let docs = documents(&render("dev"));
    assert_eq!(violations(&docs), Vec::<String>::new(), "the unbroken dev overlay");
    for line in BREAKS.lines().filter(|l| !l.is_empty()) {
        let (change, expected) = line.split_once(" => ").expect("`change => expected`");
        let [kind, object_name, pointer, value] = change.splitn(4, ' ').collect::<Vec<_>>()[..] else {
            panic!("not `kind name pointer value`: {change}")
        };
        let mut changed = docs.clone();
        let value = serde_json::from_str(value).unwrap_or_else(|err| panic!("{value}: {err}"));
        set(object(&mut changed, kind, object_name), pointer, value);
        let found = violations(&changed);
        assert!(found.iter().any(|f| f.contains(expected)), "{change}: expected {expected:?} among {found:#?}");
    }
}

#[test]
fn kubernetes_validate_rejects_unknown_fields_and_kinds_it_has_no_schema_for() {
    let mut docs = documents(&render("dev"));
    // A misspelt field, which a lenient parser drops, and a misspelt apiVersion, which
    // kubernetes-validate only warns about.
    let probe = json!({"grpc": {"port": 8080}});
    set(object(&mut docs, "Deployment", "gateway"), "/spec/template/spec/containers/0/readinesProbe", probe);
    object(&mut docs, "HorizontalPodAutoscaler", "point-svc")["apiVersion"] = json!("autoscaling/v3");
    // As JSON, which is YAML too: serde_norway writes `on` unquoted, which PyYAML reads as true.
    let yaml: Vec<String> = docs.iter().map(Value::to_string).collect();
    let err = validate(&yaml.join("\n---\n"), &docs).expect_err("kubernetes-validate accepted both mistakes");
    assert!(err.contains("resource deployment/gateway") && err.contains("readinesProbe"), "{err}");
    assert!(err.contains("HorizontalPodAutoscaler point-svc (autoscaling/v3) was not validated"), "{err}");
    assert!(err.contains("no schema, so not checked: WARN"), "{err}");
}
