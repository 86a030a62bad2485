//! The deployment files under `deploy/` against the code they deploy: every
//! file parses, the hookgate configs they embed validate, the manifests'
//! probes, ports, volumes and mounts agree with those configs, and every
//! metric the alerts and the dashboard query is one the gateway exports.
//!
//! Nothing here needs a cluster or a container engine. Rendering the
//! kustomizations with `kubectl kustomize` is an ignored test here: kubectl
//! is not packaged by Debian, so CI cannot install it; run it with
//! `cargo test --test deploy -- --ignored` where kubectl is on PATH. The
//! image's build stage is tests/deploy_image.rs, the alerts' promtool tests
//! tests/deploy_alerts.rs, and the run-time behaviour the manifests rely on
//! (kubelet symlink swaps, the alerting gauges) tests/deploy_runtime.rs.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_yaml::Value;

use hookgate::config::{AckMode, DedupBackend, DedupMode, StoreBackend};
use hookgate::telemetry::names::{self, Kind};
use hookgate::telemetry::{DeliveryResult, Metrics, Outcome, UpstreamClass};
use hookgate::Config;

const KUBERNETES: [&str; 3] = ["sidecar", "edge", "edge-postgres"];

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

/// Every file under `dir` whose name ends with one of `extensions`.
fn files_under(dir: &Path, extensions: &[&str]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if extensions
                .iter()
                .any(|e| path.extension().is_some_and(|x| x == *e))
            {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every document of a (possibly multi-document) YAML file; empty
/// documents are skipped.
fn yaml_documents(path: &Path) -> Vec<Value> {
    let text = read(path);
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .filter(|v| !v.is_null())
        .collect()
}

fn str_of(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

fn seq(v: &Value) -> &[Value] {
    v.as_sequence().map(|s| s.as_slice()).unwrap_or(&[])
}

/// One kustomization folder, loaded.
struct Kube {
    name: &'static str,
    dir: PathBuf,
    kustomization: Value,
    objects: Vec<Value>,
}

impl Kube {
    fn load(name: &'static str) -> Kube {
        let dir = deploy_dir().join("kubernetes").join(name);
        let kustomization = yaml_documents(&dir.join("kustomization.yaml")).remove(0);
        let objects = seq(&kustomization["resources"])
            .iter()
            .flat_map(|p| yaml_documents(&dir.join(str_of(p))))
            .collect();
        Kube {
            name,
            dir,
            kustomization,
            objects,
        }
    }

    /// Files the kustomization turns into ConfigMaps (configMapGenerator).
    fn generated_files(&self) -> Vec<String> {
        seq(&self.kustomization["configMapGenerator"])
            .iter()
            .flat_map(|g| seq(&g["files"]))
            .map(|f| str_of(f).to_string())
            .collect()
    }

    fn of_kind(&self, kind: &str) -> Vec<&Value> {
        self.objects
            .iter()
            .filter(|o| str_of(&o["kind"]) == kind)
            .collect()
    }

    fn one(&self, kind: &str, name: &str) -> &Value {
        self.objects
            .iter()
            .find(|o| str_of(&o["kind"]) == kind && str_of(&o["metadata"]["name"]) == name)
            .unwrap_or_else(|| panic!("{}: no {kind} {name}", self.name))
    }

    /// The one Deployment or StatefulSet.
    fn workload(&self) -> &Value {
        let mut w: Vec<&Value> = self.of_kind("Deployment");
        w.extend(self.of_kind("StatefulSet"));
        assert_eq!(w.len(), 1, "{}: expected one workload", self.name);
        w[0]
    }

    fn pod_spec(&self) -> &Value {
        &self.workload()["spec"]["template"]["spec"]
    }

    fn container(&self, name: &str) -> &Value {
        seq(&self.pod_spec()["containers"])
            .iter()
            .find(|c| str_of(&c["name"]) == name)
            .unwrap_or_else(|| panic!("{}: no container {name}", self.name))
    }

    fn hookgate(&self) -> &Value {
        self.container("hookgate")
    }

    /// The pod volume named `name` (or a volumeClaimTemplate of that name).
    fn volume(&self, name: &str) -> &Value {
        seq(&self.pod_spec()["volumes"])
            .iter()
            .chain(seq(&self.workload()["spec"]["volumeClaimTemplates"]))
            .find(|v| str_of(&v["name"]) == name || str_of(&v["metadata"]["name"]) == name)
            .unwrap_or_else(|| panic!("{}: no volume {name}", self.name))
    }

    /// The hookgate container's mount at exactly `path`: (volume, mount).
    fn mount_at(&self, path: &str) -> (&Value, &Value) {
        let mount = seq(&self.hookgate()["volumeMounts"])
            .iter()
            .find(|m| str_of(&m["mountPath"]) == path)
            .unwrap_or_else(|| panic!("{}: nothing mounted at {path}", self.name));
        (self.volume(str_of(&mount["name"])), mount)
    }

    /// The one ConfigMap the kustomization generates: its name and the
    /// `hookgate.yaml` it holds (generated from the file of that name).
    fn config_map(&self) -> (String, String) {
        let generators = seq(&self.kustomization["configMapGenerator"]);
        assert_eq!(generators.len(), 1, "{}: one configMapGenerator", self.name);
        assert!(
            self.of_kind("ConfigMap").is_empty(),
            "{}: a hand-written ConfigMap does not roll the pods when it changes",
            self.name
        );
        let files: Vec<&str> = seq(&generators[0]["files"]).iter().map(str_of).collect();
        assert_eq!(files, ["hookgate.yaml"], "{}", self.name);
        (
            str_of(&generators[0]["name"]).to_string(),
            read(&self.dir.join("hookgate.yaml")),
        )
    }

    /// The `hookgate.yaml` of the ConfigMap mounted into the hookgate container.
    fn config_text(&self) -> String {
        self.config_map().1
    }

    /// A container's memory limit in bytes.
    fn memory_limit(&self, container: &Value) -> u64 {
        let text = str_of(&container["resources"]["limits"]["memory"]);
        quantity(text).unwrap_or_else(|| panic!("{}: memory limit {text:?}", self.name))
    }

    /// The Secret mounted at `dir` in the hookgate container.
    fn secret_at(&self, dir: &str) -> &Value {
        let (volume, mount) = self.mount_at(dir);
        assert_eq!(mount["readOnly"], Value::Bool(true), "{dir} not read-only");
        self.one("Secret", str_of(&volume["secret"]["secretName"]))
    }

    /// A container port given by number or by name.
    fn resolve_port(&self, container: &Value, port: &Value) -> u16 {
        if let Some(n) = port.as_u64() {
            return n as u16;
        }
        seq(&container["ports"])
            .iter()
            .find(|p| p["name"] == *port)
            .and_then(|p| p["containerPort"].as_u64())
            .unwrap_or_else(|| panic!("{}: no container port {port:?}", self.name)) as u16
    }
}

/// A config with its `${file:DIR/KEY}` references pointed at temporary
/// files, validated with an empty environment (so an unset `${VAR}` fails).
/// Returns the config and the referenced keys.
fn validate_with_files(text: &str, dir: &str, label: &str) -> (Config, BTreeSet<String>) {
    let prefix = format!("${{file:{dir}/");
    let tmp = tempfile::tempdir().unwrap();
    let mut keys = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("${file:") {
        let reference = &rest[at..];
        let end = reference.find('}').expect("unterminated ${file:");
        let key = reference[..end]
            .strip_prefix(&prefix)
            .unwrap_or_else(|| panic!("{label}: {} is not under {dir}", &reference[..end.min(80)]));
        keys.insert(key.to_string());
        rest = &reference[end..];
    }
    for key in &keys {
        let value = match key.as_str() {
            "redis-url" => "redis://127.0.0.1:6379/0\n",
            "postgres-url" => "postgres://hookgate:a-password@127.0.0.1:5432/hookgate\n",
            _ => "a-test-secret-of-32-characters!!\n",
        };
        std::fs::write(tmp.path().join(key), value).unwrap();
    }
    let text = text.replace(&prefix, &format!("${{file:{}/", tmp.path().display()));
    let config = Config::from_yaml(&text, &HashMap::new())
        .unwrap_or_else(|e| panic!("{label}: the embedded hookgate config is invalid: {e}"));
    (config, keys)
}

const SECRETS_DIR: &str = "/etc/hookgate/secrets";
const CONFIG_DIR: &str = "/etc/hookgate/config";

fn kube_config(kube: &Kube) -> Config {
    let (config, keys) = validate_with_files(&kube.config_text(), SECRETS_DIR, kube.name);
    let secret = kube.secret_at(SECRETS_DIR);
    let provided: BTreeSet<String> = ["stringData", "data"]
        .iter()
        .filter_map(|f| secret[*f].as_mapping())
        .flat_map(|m| m.keys().map(|k| str_of(k).to_string()))
        .collect();
    let missing: Vec<_> = keys.difference(&provided).collect();
    assert!(
        missing.is_empty(),
        "{}: the config reads {missing:?} from {SECRETS_DIR}, which the Secret does not provide",
        kube.name
    );
    config
}

#[test]
fn every_yaml_and_json_file_under_deploy_parses() {
    let yaml = files_under(&deploy_dir(), &["yaml", "yml"]);
    let json = files_under(&deploy_dir(), &["json"]);
    assert!(yaml.len() >= 10, "found only {yaml:?}");
    assert!(!json.is_empty());
    for path in &yaml {
        assert!(
            !yaml_documents(path).is_empty(),
            "{}: empty",
            path.display()
        );
    }
    for path in &json {
        serde_json::from_str::<serde_json::Value>(&read(path))
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
    // Each Kubernetes object names its API and kind (the generated
    // hookgate.yaml files are configs, not objects).
    for name in KUBERNETES {
        for object in &Kube::load(name).objects {
            assert!(
                object["apiVersion"].is_string() && object["kind"].is_string(),
                "{name}: {object:?}"
            );
        }
    }
}

#[test]
fn kustomizations_list_every_manifest_in_their_folder() {
    for name in KUBERNETES {
        let dir = deploy_dir().join("kubernetes").join(name);
        let kustomization = &yaml_documents(&dir.join("kustomization.yaml"))[0];
        let listed: BTreeSet<String> = seq(&kustomization["resources"])
            .iter()
            .map(|r| str_of(r).to_string())
            .chain(Kube::load(name).generated_files())
            .collect();
        let present: BTreeSet<String> = files_under(&dir, &["yaml", "yml"])
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .filter(|f| f != "kustomization.yaml")
            .collect();
        assert_eq!(listed, present, "{name}: resources vs files in the folder");
        // The image names the manifests use are the ones the kustomization sets.
        let kube = Kube::load(name);
        let set: BTreeSet<&str> = seq(&kustomization["images"])
            .iter()
            .map(|i| str_of(&i["name"]))
            .collect();
        for container in seq(&kube.pod_spec()["containers"]) {
            assert!(
                set.contains(str_of(&container["image"])),
                "{name}: image {:?} is not set by the kustomization",
                container["image"]
            );
        }
    }
}

#[test]
fn embedded_configs_validate_and_read_secrets_the_secret_provides() {
    for name in KUBERNETES {
        let kube = Kube::load(name);
        kube_config(&kube);
        // The container is started on the mounted ConfigMap's file.
        let args: Vec<&str> = seq(&kube.hookgate()["args"]).iter().map(str_of).collect();
        let config_path = format!("{CONFIG_DIR}/hookgate.yaml");
        assert!(
            args.windows(2)
                .any(|w| w[0] == "--config" && w[1] == config_path),
            "{name}: args {args:?} do not use --config {config_path}"
        );
        let (volume, _) = kube.mount_at(CONFIG_DIR);
        assert_eq!(
            str_of(&volume["configMap"]["name"]),
            kube.config_map().0,
            "{name}: {CONFIG_DIR} is not the generated ConfigMap"
        );
    }
}

#[test]
fn probes_and_ports_match_the_embedded_config() {
    for name in KUBERNETES {
        let kube = Kube::load(name);
        let config = kube_config(&kube);
        let hookgate = kube.hookgate();
        let (ingress, admin) = (config.listen.port(), config.admin_listen.port());
        // The kubelet probes the pod IP: the admin listener must not be loopback.
        assert!(
            !config.admin_listen.ip().is_loopback(),
            "{name}: admin.listen {} is unreachable for probes",
            config.admin_listen
        );
        for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
            let get = &hookgate[probe]["httpGet"];
            assert_eq!(str_of(&get["path"]), path, "{name}: {probe}");
            assert_eq!(
                kube.resolve_port(hookgate, &get["port"]),
                admin,
                "{name}: {probe} is not on admin.listen's port"
            );
        }
        let declared: BTreeSet<u16> = seq(&hookgate["ports"])
            .iter()
            .filter_map(|p| p["containerPort"].as_u64().map(|n| n as u16))
            .collect();
        assert_eq!(declared, BTreeSet::from([ingress, admin]), "{name}: ports");

        // Services: the ingress one exposes only `listen`; the admin port is
        // only on a headless Service made for scraping.
        let mut ingress_services = 0;
        for service in kube.of_kind("Service") {
            let targets: Vec<u16> = seq(&service["spec"]["ports"])
                .iter()
                .map(|p| kube.resolve_port(hookgate, &p["targetPort"]))
                .collect();
            if targets.contains(&ingress) {
                ingress_services += 1;
                assert_eq!(targets, [ingress], "{name}: {:?}", service["metadata"]);
            } else {
                assert_eq!(targets, [admin], "{name}: {:?}", service["metadata"]);
                assert_eq!(str_of(&service["spec"]["clusterIP"]), "None");
            }
        }
        assert_eq!(ingress_services, 1, "{name}: one ingress Service");
        if name == "sidecar" {
            assert_eq!(kube.of_kind("Service").len(), 1, "sidecar: only ingress");
        }
    }
}

#[test]
fn edge_monitoring_scrapes_the_admin_service() {
    let kube = Kube::load("edge");
    let config = kube_config(&kube);
    let monitor = kube.one("ServiceMonitor", "hookgate");
    let endpoint = &seq(&monitor["spec"]["endpoints"])[0];
    assert_eq!(str_of(&endpoint["path"]), "/metrics");
    let selector = monitor["spec"]["selector"]["matchLabels"]
        .as_mapping()
        .unwrap();
    let scraped: Vec<&Value> = kube
        .of_kind("Service")
        .into_iter()
        .filter(|s| {
            selector
                .iter()
                .all(|(k, v)| s["metadata"]["labels"].get(k) == Some(v))
        })
        .collect();
    assert_eq!(scraped.len(), 1, "the ServiceMonitor selects one Service");
    let port = seq(&scraped[0]["spec"]["ports"])
        .iter()
        .find(|p| p["name"] == endpoint["port"])
        .expect("the ServiceMonitor's port is on the Service");
    assert_eq!(
        kube.resolve_port(kube.hookgate(), &port["targetPort"]),
        config.admin_listen.port()
    );
    // The instance-down alert's job is the scraped Service's name, which is
    // also the StatefulSet's governing Service.
    let service_name = str_of(&scraped[0]["metadata"]["name"]);
    assert_eq!(
        str_of(&kube.workload()["spec"]["serviceName"]),
        service_name
    );
    assert!(rules_exprs(&kube)
        .iter()
        .any(|e| e.contains(&format!("up{{job=\"{service_name}\"}}"))));
    // The NetworkPolicy's named ports exist on the container.
    let policy = kube.one("NetworkPolicy", "hookgate");
    for rule in seq(&policy["spec"]["ingress"]) {
        for port in seq(&rule["ports"]) {
            kube.resolve_port(kube.hookgate(), &port["port"]);
        }
    }
}

#[test]
fn data_dir_volume_fits_the_ack_mode() {
    for name in KUBERNETES {
        let kube = Kube::load(name);
        let config = kube_config(&kube);
        if config.store.backend == StoreBackend::Postgres {
            // Acknowledged events are in PostgreSQL: the replicas are
            // interchangeable, hold no volume, and share dedup there.
            assert_eq!(name, "edge-postgres");
            assert_eq!(str_of(&kube.workload()["kind"]), "Deployment");
            assert!(kube.workload()["spec"]["volumeClaimTemplates"].is_null());
            assert!(kube.workload()["spec"]["replicas"].as_u64().unwrap() > 1);
            for volume in seq(&kube.pod_spec()["volumes"]) {
                assert!(
                    !volume["persistentVolumeClaim"].is_mapping(),
                    "{name}: {volume:?}"
                );
            }
            assert!(config.routes.iter().all(|r| r.ack == AckMode::Async));
            for route in &config.routes {
                if let DedupMode::On(d) = &route.dedup {
                    assert_eq!(d.backend, DedupBackend::Local, "{name}: {}", route.name);
                }
            }
            // A PodDisruptionBudget keeps replicas serving through drains.
            let budget = kube.one("PodDisruptionBudget", "hookgate");
            assert!(budget["spec"]["minAvailable"].as_u64().unwrap() >= 1);
            kube.mount_at("/tmp");
            continue;
        }
        let data_dir = config.data_dir.to_str().unwrap();
        let (volume, mount) = kube.mount_at(data_dir);
        assert_ne!(
            mount["readOnly"],
            Value::Bool(true),
            "{name}: data_dir read-only"
        );
        let persistent = volume["persistentVolumeClaim"].is_mapping()
            || volume["spec"]["accessModes"].is_sequence();
        let any_async = config.routes.iter().any(|r| r.ack == AckMode::Async);
        // An async route acknowledges events only data_dir then holds.
        assert!(
            persistent || !any_async,
            "{name}: async routes need a persistent data_dir, got {volume:?}"
        );
        match name {
            "sidecar" => {
                assert!(
                    !any_async,
                    "sidecar: the emptyDir is chosen for sync routes"
                );
                assert!(volume["emptyDir"].is_mapping());
            }
            _ => {
                assert!(any_async && persistent);
                // Several replicas see each event once only through Redis.
                assert!(kube.workload()["spec"]["replicas"].as_u64().unwrap() > 1);
                for route in &config.routes {
                    if let DedupMode::On(d) = &route.dedup {
                        assert_eq!(d.backend, DedupBackend::Redis, "edge: {}", route.name);
                    }
                }
            }
        }
        // The read-only root filesystem leaves SQLite a writable /tmp.
        kube.mount_at("/tmp");
    }
}

#[test]
fn every_container_is_locked_down_and_sized() {
    for name in KUBERNETES {
        let kube = Kube::load(name);
        assert_eq!(kube.pod_spec()["securityContext"]["runAsNonRoot"], true);
        for container in seq(&kube.pod_spec()["containers"]) {
            let c = str_of(&container["name"]);
            let security = &container["securityContext"];
            assert_eq!(security["runAsNonRoot"], true, "{name}/{c}");
            assert_eq!(security["allowPrivilegeEscalation"], false, "{name}/{c}");
            assert_eq!(security["readOnlyRootFilesystem"], true, "{name}/{c}");
            assert_eq!(
                seq(&security["capabilities"]["drop"]),
                [Value::from("ALL")],
                "{name}/{c}"
            );
            for (kind, resource) in [
                ("requests", "cpu"),
                ("requests", "memory"),
                ("limits", "memory"),
            ] {
                assert!(
                    !container["resources"][kind][resource].is_null(),
                    "{name}/{c}: no {kind}.{resource}"
                );
            }
        }
        // CPU is requested, never capped: CFS throttling stalls a
        // latency-sensitive proxy for whole periods.
        assert!(
            kube.hookgate()["resources"]["limits"]["cpu"].is_null(),
            "{name}: hookgate has a CPU limit"
        );
        // Kubelet's drain budget covers the preStop pause and the shutdown.
        let config = kube_config(&kube);
        let grace = kube.pod_spec()["terminationGracePeriodSeconds"]
            .as_u64()
            .unwrap();
        let pause = kube.hookgate()["lifecycle"]["preStop"]["sleep"]["seconds"]
            .as_u64()
            .unwrap_or(0);
        assert!(
            pause + config.shutdown_timeout.as_secs() < grace,
            "{name}: preStop {pause}s + shutdown_timeout must fit in {grace}s"
        );
    }
}

/// Names the gateway registers, with their Prometheus types: what
/// `/metrics` renders for a route with one sample in every histogram, and
/// [`names::ALL`].
fn registered_metrics() -> BTreeMap<String, String> {
    let metrics = Metrics::new();
    let route = metrics.route("r", 1);
    route.request(Outcome::Accepted, 0.01);
    route.upstream(UpstreamClass::Status2xx, 0.01);
    let destination = metrics.destination(&route, "r", "upstream");
    destination.delivery(DeliveryResult::Delivered, 0.01);
    destination.delivery_lag(1.0);
    destination.paused(false);
    metrics.store_commit(0.001, true);
    metrics.run_upkeep();
    let mut known: BTreeMap<String, String> = metrics
        .render()
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .map(|(name, kind)| (name.to_string(), kind.to_string()))
        .collect();
    for (name, kind, _) in names::ALL {
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        };
        known.insert(name.to_string(), kind.to_string());
    }
    known
}

/// Every rule (alerting and recording) of the folder's PrometheusRules.
fn rules(kube: &Kube) -> Vec<Value> {
    kube.of_kind("PrometheusRule")
        .iter()
        .flat_map(|r| seq(&r["spec"]["groups"]))
        .flat_map(|g| seq(&g["rules"]))
        .cloned()
        .collect()
}

fn rules_exprs(kube: &Kube) -> Vec<String> {
    rules(kube)
        .iter()
        .map(|r| str_of(&r["expr"]).to_string())
        .collect()
}

fn dashboard_exprs(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr", serde_json::Value::String(e)) => out.push(e.clone()),
                    _ => dashboard_exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| dashboard_exprs(v, out)),
        _ => {}
    }
}

/// Every `hookgate_…` identifier in a PromQL expression.
fn metric_names(expr: &str) -> Vec<String> {
    let mut found = Vec::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while let Some(at) = expr[i..].find("hookgate_") {
        let start = i + at;
        let preceded =
            start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        if !preceded {
            found.push(expr[start..end].to_string());
        }
        i = end;
    }
    found
}

#[test]
fn alerts_and_dashboard_query_only_metrics_the_gateway_exports() {
    let known = registered_metrics();
    let mut exprs: Vec<(String, String)> = Vec::new();
    for name in KUBERNETES {
        for e in rules_exprs(&Kube::load(name)) {
            exprs.push((format!("{name} PrometheusRule"), e));
        }
    }
    for path in files_under(&deploy_dir().join("grafana"), &["json"]) {
        let mut found = Vec::new();
        dashboard_exprs(&serde_json::from_str(&read(&path)).unwrap(), &mut found);
        let label = path.file_name().unwrap().to_string_lossy().into_owned();
        exprs.extend(found.into_iter().map(|e| (label.clone(), e)));
    }
    assert!(exprs.len() >= 10, "too few expressions found: {exprs:?}");
    let recorded: Vec<String> = KUBERNETES
        .iter()
        .flat_map(|name| rules(&Kube::load(name)))
        .filter_map(|r| r["record"].as_str().map(String::from))
        .collect();
    let mut used = BTreeSet::new();
    for (file, expr) in &exprs {
        let names = metric_names(expr);
        assert!(
            !names.is_empty()
                || expr.starts_with("up{")
                || expr.starts_with("absent(up{")
                || expr.contains("kubelet_volume_stats_")
                || recorded.iter().any(|r| expr.contains(r.as_str())),
            "{file}: {expr}"
        );
        for name in names {
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| {
                    name.strip_suffix(suffix)
                        .filter(|base| known.get(*base).is_some_and(|k| k == "histogram"))
                })
                .unwrap_or(&name);
            assert!(
                known.contains_key(base),
                "{file}: {name} is not a metric hookgate exports\n  in: {expr}\n  known: {:?}",
                known.keys().collect::<Vec<_>>()
            );
            // A histogram is queried through its series, not by its bare name.
            assert_ne!(
                known.get(&name).map(String::as_str),
                Some("histogram"),
                "{file}: bare histogram name {name}"
            );
            used.insert(base.to_string());
        }
    }
    // The brief's must-haves are there.
    for name in [
        names::REQUESTS_TOTAL,
        names::VERIFY_FAILURES_TOTAL,
        names::REQUEST_DURATION_SECONDS,
        names::UPSTREAM_DURATION_SECONDS,
        names::SPOOL_PENDING,
        names::DEAD_LETTERS,
        names::DELIVERY_LAG_SECONDS,
        names::CONFIG_RELOADS_TOTAL,
        names::CONFIG_LAST_RELOAD_SUCCESSFUL,
        names::SPOOL_OLDEST_PENDING_AGE_SECONDS,
        names::DEDUP_ERRORS_TOTAL,
        names::SECRET_MATCHES_TOTAL,
        names::STORE_COMMIT_FAILURES_TOTAL,
        names::DEDUP_KEY_FALLBACKS_TOTAL,
    ] {
        assert!(used.contains(name), "{name} is not used");
    }
}

#[test]
fn dockerfile_is_multi_stage_non_root_and_has_no_healthcheck() {
    let text = read(&deploy_dir().join("docker/Dockerfile"));
    let instructions: Vec<(String, String)> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once(' '))
        .map(|(i, rest)| (i.to_ascii_uppercase(), rest.trim().to_string()))
        .collect();
    let froms: Vec<usize> = (0..instructions.len())
        .filter(|&i| instructions[i].0 == "FROM")
        .collect();
    assert!(froms.len() >= 2, "not multi-stage");
    let last = &instructions[*froms.last().unwrap()..];
    assert!(
        last[0].1.contains("distroless"),
        "final stage: {}",
        last[0].1
    );
    assert!(!instructions.iter().any(|(i, _)| i == "HEALTHCHECK"));
    let user = last
        .iter()
        .rev()
        .find(|(i, _)| i == "USER")
        .map(|(_, u)| u.split(':').next().unwrap().to_string())
        .expect("the final stage sets USER");
    assert!(
        user.parse::<u32>().is_ok_and(|uid| uid != 0),
        "USER {user} must be a numeric non-root uid (runAsNonRoot checks it)"
    );
    // The final stage copies only the built binary (and its data dir).
    assert!(last
        .iter()
        .filter(|(i, _)| i == "COPY")
        .all(|(_, args)| args.contains("--from=build")));
    let entrypoint = last.iter().find(|(i, _)| i == "ENTRYPOINT").unwrap();
    assert!(entrypoint.1.contains("hookgate"));

    let ignore = read(&Path::new(env!("CARGO_MANIFEST_DIR")).join(".dockerignore"));
    let lines: Vec<&str> = ignore.lines().map(str::trim).collect();
    assert!(
        lines.contains(&"*"),
        ".dockerignore does not exclude by default"
    );
    for needed in ["!Cargo.toml", "!Cargo.lock", "!src"] {
        assert!(lines.contains(&needed), ".dockerignore lacks {needed}");
    }
}

#[test]
fn systemd_unit_sandboxes_and_its_config_fits_it() {
    let unit = read(&deploy_dir().join("systemd/hookgate.service"));
    let mut settings: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in unit.lines().map(str::trim) {
        if let Some((k, v)) = line.split_once('=').filter(|_| !line.starts_with('#')) {
            settings
                .entry(k.to_string())
                .or_default()
                .push(v.to_string());
        }
    }
    let one = |k: &str| -> &str {
        settings
            .get(k)
            .and_then(|v| v.last())
            .map(String::as_str)
            .unwrap_or_else(|| panic!("hookgate.service: no {k}="))
    };
    assert_eq!(one("ExecReload"), "/bin/kill -HUP $MAINPID");
    assert_eq!(one("ProtectSystem"), "strict");
    assert_eq!(one("NoNewPrivileges"), "yes");
    assert_eq!(one("DynamicUser"), "yes");
    assert_eq!(one("CapabilityBoundingSet"), "");

    let (config, keys) = validate_with_files(
        &read(&deploy_dir().join("systemd/hookgate.yaml")),
        "/run/credentials/hookgate.service",
        "systemd/hookgate.yaml",
    );
    // data_dir is the unit's state directory (the one writable path).
    assert_eq!(
        config.data_dir,
        Path::new("/var/lib").join(one("StateDirectory"))
    );
    // The unit starts the config it ships and passes every credential it reads.
    assert!(one("ExecStart").contains("--config /etc/hookgate/hookgate.yaml"));
    let credentials: BTreeSet<String> = settings["LoadCredential"]
        .iter()
        .map(|c| c.split_once(':').unwrap().0.to_string())
        .collect();
    assert_eq!(credentials, keys);
    assert!(
        config.shutdown_timeout.as_secs() < one("TimeoutStopSec").parse::<u64>().unwrap(),
        "TimeoutStopSec must leave room for shutdown_timeout"
    );
}

/// A Kubernetes quantity ("128Mi", "4Gi", "500M", "1048576") in bytes.
fn quantity(text: &str) -> Option<u64> {
    let units: [(&str, u64); 8] = [
        ("Ki", 1 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("Ti", 1 << 40),
        ("k", 1_000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
        ("T", 1_000_000_000_000),
    ];
    for (suffix, factor) in units {
        if let Some(n) = text.strip_suffix(suffix) {
            return n.parse::<u64>().ok().map(|n| n * factor);
        }
    }
    text.parse().ok()
}

/// The memory model of deploy/kubernetes/README.md ("Memory"), from a
/// release build flooded with unfinished bodies and idle connections
/// (150 x 1 MiB: +173 MiB; 200 x 256 KiB: +79 MiB; 1,000 connections
/// with 8 KB of headers each: +25.5 MiB).
mod memory {
    /// Resident under steady load (idle: ~10 MiB; BENCHMARKS.md: 17-21 MiB
    /// peak under async load).
    pub const BASELINE: u64 = 24 << 20;
    /// Per request in progress beyond its body (measured ~145 KiB).
    pub const PER_REQUEST: u64 = 192 << 10;
    /// A held body costs 1.01-1.02 times its size: counted as 1.05.
    pub fn body(bytes: u64) -> u64 {
        bytes * 105 / 100
    }
    /// Per open connection beyond its header bytes (measured ~18 KiB).
    pub const PER_CONNECTION: u64 = 32 << 10;
}

/// The most memory `config` lets hookgate hold: the baseline, every
/// connection with full headers, every request in progress with a full
/// body (and, on sync routes, a full upstream answer), every delivery in
/// flight with its event and the consumer's answer.
fn worst_case_memory(config: &Config) -> u64 {
    let l = &config.limits;
    let sync = config.routes.iter().any(|r| r.ack == AckMode::Sync);
    let answer = if sync {
        l.max_upstream_response_bytes
    } else {
        0
    };
    let deliveries: u64 = config
        .routes
        .iter()
        .flat_map(|r| r.spooled_destinations())
        .map(|d| d.concurrency as u64)
        .sum();
    memory::BASELINE
        + l.max_connections as u64 * (l.max_header_bytes as u64 + memory::PER_CONNECTION)
        + l.max_concurrent_requests as u64
            * (memory::body(l.max_body_bytes) + memory::PER_REQUEST + answer)
        + deliveries * (l.max_body_bytes + l.max_upstream_response_bytes)
}

#[test]
fn memory_limits_hold_what_the_configs_limits_allow() {
    for name in KUBERNETES {
        let kube = Kube::load(name);
        let config = kube_config(&kube);
        let limit = kube.memory_limit(kube.hookgate());
        let need = worst_case_memory(&config);
        assert!(
            need <= limit,
            "{name}: the config allows {} MiB ({} concurrent requests x {} KiB bodies, {} connections), over the container's {} MiB limit",
            need >> 20,
            config.limits.max_concurrent_requests,
            config.limits.max_body_bytes >> 10,
            config.limits.max_connections,
            limit >> 20
        );
        // The request covers the steady state.
        let request =
            quantity(str_of(&kube.hookgate()["resources"]["requests"]["memory"])).unwrap();
        assert!(
            request >= memory::BASELINE,
            "{name}: memory request under the baseline"
        );
    }
    let unit = read(&deploy_dir().join("systemd/hookgate.service"));
    let max = unit
        .lines()
        .find_map(|l| l.trim().strip_prefix("MemoryMax="))
        .expect("hookgate.service sets MemoryMax=");
    let (config, _) = validate_with_files(
        &read(&deploy_dir().join("systemd/hookgate.yaml")),
        "/run/credentials/hookgate.service",
        "systemd/hookgate.yaml",
    );
    let max = quantity(&max.replace('K', "Ki").replace('M', "Mi").replace('G', "Gi")).unwrap();
    assert!(
        worst_case_memory(&config) <= max,
        "systemd: the config allows {} MiB, over MemoryMax {} MiB",
        worst_case_memory(&config) >> 20,
        max >> 20
    );
}

#[test]
fn config_and_secret_changes_reach_running_pods() {
    for name in KUBERNETES {
        let kube = Kube::load(name);
        let config = kube_config(&kube);
        // Mounted Secret (and ConfigMap) files change in place: watched.
        assert!(config.reload.watch, "{name}: reload.watch is off");
        // The ConfigMap is generated with a content hash in its name, so
        // an edit rolls the pods.
        let (generated, _) = kube.config_map();
        let (volume, _) = kube.mount_at(CONFIG_DIR);
        assert_eq!(str_of(&volume["configMap"]["name"]), generated);
        for generator in seq(&kube.kustomization["configMapGenerator"]) {
            assert_ne!(
                generator["options"]["disableNameSuffixHash"],
                Value::Bool(true),
                "{name}: without the hash suffix an edit does not roll the pods"
            );
        }
        assert!(
            kube.kustomization["generatorOptions"]["disableNameSuffixHash"] != Value::Bool(true),
            "{name}"
        );
    }
}

/// systemd copies LoadCredential= files once, when the service starts: a
/// reload re-reads only those copies. The shipped path unit restarts the
/// service when a credential's source changes.
#[test]
fn systemd_restarts_the_service_when_a_credential_source_changes() {
    let unit = read(&deploy_dir().join("systemd/hookgate.service"));
    let sources: BTreeSet<String> = unit
        .lines()
        .filter_map(|l| l.trim().strip_prefix("LoadCredential="))
        .map(|c| c.split_once(':').unwrap().1.to_string())
        .collect();
    assert!(!sources.is_empty());
    let path_unit = read(&deploy_dir().join("systemd/hookgate-credentials.path"));
    let watched: BTreeSet<String> = path_unit
        .lines()
        .filter_map(|l| l.trim().strip_prefix("PathChanged="))
        .map(String::from)
        .collect();
    assert_eq!(watched, sources, "every credential source is watched");
    let unit_line = path_unit
        .lines()
        .find_map(|l| l.trim().strip_prefix("Unit="))
        .unwrap_or("hookgate-credentials.service");
    let restart = read(&deploy_dir().join("systemd").join(unit_line));
    assert!(
        restart
            .lines()
            .any(|l| l.trim() == "ExecStart=/bin/systemctl try-restart hookgate.service"),
        "{unit_line} does not restart hookgate"
    );
    // The docs ship this way and no longer promise that a reload re-reads
    // the credentials.
    let docs = read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/deployment.md"));
    assert!(
        docs.contains("hookgate-credentials.path"),
        "docs/deployment.md"
    );
    assert!(
        !docs.contains("re-reads its\nconfiguration and secret files"),
        "docs/deployment.md says a reload re-reads LoadCredential copies"
    );
}

#[test]
fn every_alert_has_a_runbook_section_and_the_monitors_carry_the_release_label() {
    let runbooks = read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/runbooks.md"));
    let anchors: BTreeSet<String> = runbooks
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .map(|h| {
            h.trim()
                .to_lowercase()
                .chars()
                .filter(|c| c.is_alphanumeric() || *c == '-' || *c == ' ')
                .map(|c| if c == ' ' { '-' } else { c })
                .collect()
        })
        .collect();
    let kube = Kube::load("edge");
    let alerts: Vec<Value> = rules(&kube)
        .into_iter()
        .filter(|r| r["alert"].is_string())
        .collect();
    assert!(alerts.len() >= 12, "{} alerts", alerts.len());
    for alert in &alerts {
        let name = str_of(&alert["alert"]);
        for annotation in ["summary", "description", "runbook_url"] {
            assert!(
                !str_of(&alert["annotations"][annotation]).is_empty(),
                "{name}: no {annotation}"
            );
        }
        let url = str_of(&alert["annotations"]["runbook_url"]);
        let (page, anchor) = url.split_once('#').expect("runbook_url has an anchor");
        assert!(page.ends_with("/docs/runbooks.md"), "{name}: {url}");
        assert!(
            anchors.contains(anchor),
            "{name}: no section #{anchor} in docs/runbooks.md"
        );
        let severity = str_of(&alert["labels"]["severity"]);
        assert!(
            ["warning", "critical"].contains(&severity),
            "{name}: {severity}"
        );
    }
    let severity_of = |name: &str| {
        let alert = alerts
            .iter()
            .find(|a| a["alert"] == name)
            .unwrap_or_else(|| panic!("no alert {name}"));
        (
            str_of(&alert["labels"]["severity"]).to_string(),
            str_of(&alert["expr"]).to_string(),
        )
    };
    // Dead letters wait to be replayed: a warning, per pod.
    let (severity, expr) = severity_of("HookgateDeadLetters");
    assert_eq!(severity, "warning");
    assert!(expr.contains("pod"), "{expr}");
    for name in [
        "HookgateConsumerDown",
        "HookgateAbsent",
        "HookgateDedupStoreErrors",
        "HookgateErrorBudgetBurnFast",
        "HookgateErrorBudgetBurnSlow",
        "HookgateVolumeFillingUp",
    ] {
        severity_of(name);
    }
    // kube-prometheus-stack selects rules and monitors by `release`.
    for (folder, kind) in [
        ("edge", "PrometheusRule"),
        ("edge", "ServiceMonitor"),
        ("sidecar", "PodMonitor"),
    ] {
        let kube = Kube::load(folder);
        let objects = kube.of_kind(kind);
        assert_eq!(objects.len(), 1, "{folder}: one {kind}");
        assert!(
            objects[0]["metadata"]["labels"]["release"].is_string(),
            "{folder}: {kind} has no release label"
        );
    }
}

#[test]
fn sidecar_is_scraped_and_its_consumer_has_a_readiness_probe() {
    let kube = Kube::load("sidecar");
    let config = kube_config(&kube);
    let admin = config.admin_listen.port();
    let monitor = &kube.of_kind("PodMonitor")[0];
    let labels = &kube.workload()["spec"]["template"]["metadata"]["labels"];
    for (k, v) in monitor["spec"]["selector"]["matchLabels"]
        .as_mapping()
        .unwrap()
    {
        assert_eq!(
            labels.get(k),
            Some(v),
            "the PodMonitor does not select the pods"
        );
    }
    let endpoint = &seq(&monitor["spec"]["podMetricsEndpoints"])[0];
    assert_eq!(str_of(&endpoint["path"]), "/metrics");
    assert_eq!(kube.resolve_port(kube.hookgate(), &endpoint["port"]), admin);
    // Plain annotations for a Prometheus without the operator.
    let annotations = &kube.workload()["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(str_of(&annotations["prometheus.io/scrape"]), "true");
    assert_eq!(
        str_of(&annotations["prometheus.io/port"]),
        admin.to_string()
    );
    assert_eq!(str_of(&annotations["prometheus.io/path"]), "/metrics");
    // The pod is not Ready (and gets no webhooks) before the consumer is.
    let consumer = kube.container("consumer");
    let probe = &consumer["readinessProbe"]["httpGet"];
    assert!(probe.is_mapping(), "the consumer has no readinessProbe");
    kube.resolve_port(consumer, &probe["port"]);
}

#[test]
fn dashboard_has_per_pod_spool_views_and_the_operational_panels() {
    let mut exprs = Vec::new();
    dashboard_exprs(
        &serde_json::from_str(&read(&deploy_dir().join("grafana/hookgate.json"))).unwrap(),
        &mut exprs,
    );
    let using = |name: &str| -> Vec<&String> {
        exprs
            .iter()
            .filter(|e| metric_names(e).iter().any(|n| n == name))
            .collect()
    };
    for name in [
        names::SECRET_MATCHES_TOTAL,
        names::CONFIG_RELOADS_TOTAL,
        names::CONFIG_LAST_RELOAD_SUCCESSFUL,
        names::STORE_COMMIT_FAILURES_TOTAL,
        names::DEDUP_KEY_FALLBACKS_TOTAL,
        names::DEDUP_ERRORS_TOTAL,
        names::SPOOL_OLDEST_PENDING_AGE_SECONDS,
    ] {
        assert!(
            !using(name).is_empty(),
            "the dashboard has no panel on {name}"
        );
    }
    for name in [names::SPOOL_PENDING, names::DEAD_LETTERS] {
        assert!(
            using(name).iter().any(|e| e.contains("by (pod")
                || e.contains("by (route, pod")
                || e.contains("by (pod, route")),
            "the dashboard shows {name} only summed over pods"
        );
    }
}

/// The spool volume holds what the config keeps: delivered events for
/// `store.retention` at the rate the claim is sized for, plus every
/// route's `max_pending`, at the sized-for event size, with 25% for SQLite
/// pages, WAL and free space (deploy/kubernetes/README.md, "Volume size").
#[test]
fn spool_volume_is_sized_from_retention_and_max_pending_and_watched() {
    let kube = Kube::load("edge");
    let config = kube_config(&kube);
    let claim = &seq(&kube.workload()["spec"]["volumeClaimTemplates"])[0];
    let annotation = |key: &str| -> u64 {
        str_of(&claim["metadata"]["annotations"][key])
            .parse()
            .unwrap_or_else(|_| panic!("the data claim has no {key} annotation"))
    };
    let rate = annotation("hookgate.example.com/sized-for-events-per-second");
    let event = annotation("hookgate.example.com/sized-for-event-bytes");
    let pending: u64 = config
        .routes
        .iter()
        .filter(|r| r.ack == AckMode::Async)
        .map(|r| r.max_pending)
        .sum();
    let need = (config.store.retention.as_secs() * rate + pending) * event * 5 / 4;
    let size = quantity(str_of(&claim["spec"]["resources"]["requests"]["storage"])).unwrap();
    assert!(
        size >= need,
        "the data volume ({} MiB) is under (retention x rate + max_pending) x event size x 1.25 = {} MiB",
        size >> 20,
        need >> 20
    );
    assert!(
        rules_exprs(&kube)
            .iter()
            .any(|e| e.contains("kubelet_volume_stats_available_bytes")
                && e.contains(str_of(&claim["metadata"]["name"]))),
        "no alert on the data volume filling up"
    );
}

/// `kubectl kustomize` renders both folders, and the rendered workload
/// mounts the generated (hash-suffixed) ConfigMap. Needs kubectl on PATH
/// (.ci/run makes sure it is there).
#[test]
fn kubectl_kustomize_renders_every_folder() {
    for name in KUBERNETES {
        let dir = deploy_dir().join("kubernetes").join(name);
        let output = std::process::Command::new("kubectl")
            .arg("kustomize")
            .arg(&dir)
            .output()
            .expect("kubectl on PATH");
        assert!(
            output.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let text = String::from_utf8(output.stdout).unwrap();
        let objects: Vec<Value> = serde_yaml::Deserializer::from_str(&text)
            .map(|d| Value::deserialize(d).unwrap())
            .collect();
        let map = objects
            .iter()
            .find(|o| o["kind"] == "ConfigMap")
            .expect("a ConfigMap");
        let map_name = str_of(&map["metadata"]["name"]);
        assert!(
            map_name.starts_with("hookgate-config-"),
            "{name}: {map_name}"
        );
        assert!(
            text.contains(&format!("name: {map_name}\n")) && text.matches(map_name).count() >= 2,
            "{name}: the workload does not mount {map_name}"
        );
    }
}
