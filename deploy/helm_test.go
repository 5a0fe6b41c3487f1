package deploy

import (
	"bytes"
	"errors"
	"io"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/prowler-cloud/s3-exporter/config"
)

const (
	chartDir        = "helm/s3-exporter"
	testKubeVersion = "1.31.0"
)

// chartCopies are the chart's files that are copies of the project's own
// (`make chart-files`): a chart cannot reach outside its folder, and Helm
// does not follow symbolic links out of it.
var chartCopies = map[string]string{
	"files/alerts.yml":       "prometheus/alerts.yml",
	"files/s3-exporter.json": "grafana/s3-exporter.json",
}

func TestChartFilesMatchTheProject(t *testing.T) {
	for copyPath, orig := range chartCopies {
		got := readFile(t, filepath.Join(chartDir, copyPath))
		want := readFile(t, orig)
		if !bytes.Equal(got, want) {
			t.Errorf("%s/%s differs from deploy/%s: run `make chart-files`", chartDir, copyPath, orig)
		}
	}
}

// TestChartValuesNameEverySetting: every variable the exporter reads is in
// values.yaml, set or commented with its default, so the chart's reader sees
// every setting in one place.
func TestChartValuesNameEverySetting(t *testing.T) {
	values := string(readFile(t, filepath.Join(chartDir, "values.yaml")))
	typ := reflect.TypeFor[config.Config]()
	n := 0
	for i := range typ.NumField() {
		name := typ.Field(i).Tag.Get("envconfig")
		if name == "" {
			continue
		}
		n++
		if !strings.Contains(values, name) {
			t.Errorf("values.yaml does not name %s", name)
		}
	}
	if n < 20 {
		t.Fatalf("found only %d settings in config.Config", n)
	}
}

// renderChart runs `helm template` with the given --set flags and returns
// its objects by "Kind/name".
func renderChart(t *testing.T, set ...string) (map[string]map[string]any, error) {
	t.Helper()
	helm := goTool(t, helmPkg)
	// A helm built with `go install` has no linker-stamped default
	// Kubernetes version (it says v1.20); the chart asks for 1.25 or later.
	args := []string{"template", "rel", chartDir, "--namespace", "prowler", "--kube-version", testKubeVersion}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	out, err := runTool(t, ".", helm, args...)
	if err != nil {
		return nil, err
	}
	objs := map[string]map[string]any{}
	dec := yaml.NewDecoder(strings.NewReader(out))
	for {
		var o map[string]any
		if err := dec.Decode(&o); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("helm template output is not YAML: %v\n%s", err, out)
		}
		if o == nil {
			continue
		}
		key := dig[string](t, o, "kind") + "/" + dig[string](t, o, "metadata", "name")
		if _, dup := objs[key]; dup {
			t.Errorf("%s rendered twice", key)
		}
		objs[key] = o
	}
	return objs, nil
}

func mustRender(t *testing.T, set ...string) map[string]map[string]any {
	t.Helper()
	objs, err := renderChart(t, set...)
	if err != nil {
		t.Fatalf("helm template %v: %v", set, err)
	}
	return objs
}

// dig walks maps (string keys) and lists (int indexes) and asserts the type
// of what it finds; a missing step fails the test.
func dig[T any](t *testing.T, v any, path ...any) T {
	t.Helper()
	cur := v
	for i, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := cur.(map[string]any)
			if !ok {
				t.Fatalf("%v: not a map at %v", path, path[:i])
			}
			if cur, ok = m[k]; !ok {
				t.Fatalf("%v: no %q", path, k)
			}
		case int:
			l, ok := cur.([]any)
			if !ok || k >= len(l) {
				t.Fatalf("%v: no item %d", path, k)
			}
			cur = l[k]
		}
	}
	got, ok := cur.(T)
	if !ok {
		t.Fatalf("%v = %#v (%T), want a %T", path, cur, cur, *new(T))
	}
	return got
}

func has(v any, path ...string) bool {
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return false
		}
		if v, ok = m[k]; !ok {
			return false
		}
	}
	return true
}

func kinds(objs map[string]map[string]any) []string {
	return slices.Sorted(maps.Keys(objs))
}

func chartContainer(t *testing.T, objs map[string]map[string]any) map[string]any {
	t.Helper()
	d, ok := objs["Deployment/rel-s3-exporter"]
	if !ok {
		t.Fatalf("no Deployment/rel-s3-exporter in %v", kinds(objs))
	}
	cs := dig[[]any](t, d, "spec", "template", "spec", "containers")
	if len(cs) != 1 {
		t.Fatalf("%d containers, want 1", len(cs))
	}
	return cs[0].(map[string]any)
}

// chartEnv returns the container's env by name (a value, or the valueFrom).
func chartEnv(t *testing.T, c map[string]any) map[string]any {
	t.Helper()
	env := map[string]any{}
	for _, e := range dig[[]any](t, c, "env") {
		m := e.(map[string]any)
		name := m["name"].(string)
		if _, dup := env[name]; dup {
			t.Errorf("env %s set twice", name)
		}
		if v, ok := m["value"]; ok {
			env[name] = v
		} else {
			env[name] = m["valueFrom"]
		}
	}
	return env
}

func TestHelmLint(t *testing.T) {
	helm := goTool(t, helmPkg)
	for _, set := range [][]string{
		nil,
		{"serviceMonitor.enabled=true", "prometheusRule.enabled=true", "dashboard.enabled=true",
			"networkPolicy.enabled=true", "keda.enabled=true", "nats.existingSecret=nats", "credentialsKey.existingSecret=fernet"},
	} {
		args := []string{"lint", "--strict", chartDir, "--kube-version", testKubeVersion}
		for _, s := range set {
			args = append(args, "--set", s)
		}
		if out, err := runTool(t, ".", helm, args...); err != nil {
			t.Errorf("helm lint %v: %v\n%s", set, err, out)
		}
	}
}

func TestHelmTemplateDefaults(t *testing.T) {
	objs := mustRender(t)
	want := []string{"Deployment/rel-s3-exporter", "PodDisruptionBudget/rel-s3-exporter", "Service/rel-s3-exporter", "ServiceAccount/rel-s3-exporter"}
	if got := kinds(objs); !slices.Equal(got, want) {
		t.Errorf("default objects %v, want %v (no Secret: the chart only names existing ones)", got, want)
	}
	d := objs["Deployment/rel-s3-exporter"]
	if got := dig[int](t, d, "spec", "replicas"); got != 2 {
		t.Errorf("replicas %d, want 2", got)
	}
	pod := dig[map[string]any](t, d, "spec", "template", "spec")
	if got := dig[bool](t, pod, "automountServiceAccountToken"); got {
		t.Error("the pod mounts a service account token")
	}
	// Restricted Pod Security Standard.
	if !dig[bool](t, pod, "securityContext", "runAsNonRoot") || dig[string](t, pod, "securityContext", "seccompProfile", "type") != "RuntimeDefault" {
		t.Errorf("pod securityContext %v", pod["securityContext"])
	}
	c := chartContainer(t, objs)
	sc := dig[map[string]any](t, c, "securityContext")
	if !dig[bool](t, sc, "runAsNonRoot") || !dig[bool](t, sc, "readOnlyRootFilesystem") || dig[bool](t, sc, "allowPrivilegeEscalation") ||
		!slices.Equal(dig[[]any](t, sc, "capabilities", "drop"), []any{"ALL"}) || dig[string](t, sc, "seccompProfile", "type") != "RuntimeDefault" {
		t.Errorf("container securityContext %v, want non-root, read-only root, no escalation, drop ALL, RuntimeDefault", sc)
	}
	// The image: the chart's appVersion, never latest.
	if got := dig[string](t, c, "image"); got != "prowlercloud/s3-exporter:1.1.0" {
		t.Errorf("image %s, want prowlercloud/s3-exporter:1.1.0", got)
	}
	if got := dig[string](t, c, "imagePullPolicy"); got != "IfNotPresent" {
		t.Errorf("imagePullPolicy %s", got)
	}
	env := chartEnv(t, c)
	for name, want := range map[string]any{
		"S3EXPORTER_NATS_URL": "nats://nats:4222", "S3EXPORTER_METRICS_ADDR": ":9090",
		"S3EXPORTER_STREAM_REPLICAS": "3", "GOMEMLIMIT": "921MiB", // 90% of 1Gi
	} {
		if env[name] != want {
			t.Errorf("env %s = %v, want %v", name, env[name], want)
		}
	}
	for _, name := range []string{"S3EXPORTER_NATS_CREDS", "S3EXPORTER_CREDENTIALS_KEY"} {
		if _, ok := env[name]; ok {
			t.Errorf("env %s set without its secret", name)
		}
	}
	// Spread across zones and nodes, each constraint selecting our pods.
	tsc := dig[[]any](t, pod, "topologySpreadConstraints")
	var keys []string
	for i := range tsc {
		keys = append(keys, dig[string](t, tsc, i, "topologyKey"))
		if got := dig[string](t, tsc, i, "labelSelector", "matchLabels", "app.kubernetes.io/instance"); got != "rel" {
			t.Errorf("topology spread %d selects instance %q", i, got)
		}
	}
	if !slices.Equal(keys, []string{"topology.kubernetes.io/zone", "kubernetes.io/hostname"}) {
		t.Errorf("topology spread keys %v", keys)
	}
	if got := dig[int](t, objs["PodDisruptionBudget/rel-s3-exporter"], "spec", "minAvailable"); got != 1 {
		t.Errorf("PDB minAvailable %d", got)
	}
}

func TestHelmTemplateEverythingEnabled(t *testing.T) {
	objs := mustRender(t,
		"serviceMonitor.enabled=true", "serviceMonitor.labels.release=kps",
		"prometheusRule.enabled=true", "dashboard.enabled=true", "networkPolicy.enabled=true",
		"keda.enabled=true", "podDisruptionBudget.enabled=true",
		"nats.existingSecret=s3-exporter-nats", "credentialsKey.existingSecret=prowler-fernet",
		"config.S3EXPORTER_SUBJECT_PREFIX=acme", "config.S3EXPORTER_CONSUMER_NAME=exp",
		"resources.limits.memory=512Mi", `networkPolicy.nats.namespaceSelector.matchLabels.kubernetes\.io/metadata\.name=nats`)
	for _, want := range []string{
		"ConfigMap/rel-s3-exporter-dashboard", "Deployment/rel-s3-exporter", "NetworkPolicy/rel-s3-exporter",
		"PodDisruptionBudget/rel-s3-exporter", "PrometheusRule/rel-s3-exporter", "ScaledObject/rel-s3-exporter",
		"Service/rel-s3-exporter", "ServiceAccount/rel-s3-exporter", "ServiceMonitor/rel-s3-exporter",
	} {
		if _, ok := objs[want]; !ok {
			t.Errorf("no %s in %v", want, kinds(objs))
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// Existing Secrets, mounted or referenced, never rendered.
	c := chartContainer(t, objs)
	env := chartEnv(t, c)
	if env["S3EXPORTER_NATS_CREDS"] != "/etc/nats/nats.creds" {
		t.Errorf("S3EXPORTER_NATS_CREDS = %v", env["S3EXPORTER_NATS_CREDS"])
	}
	if got := dig[string](t, env["S3EXPORTER_CREDENTIALS_KEY"], "secretKeyRef", "name"); got != "prowler-fernet" {
		t.Errorf("S3EXPORTER_CREDENTIALS_KEY from secret %q", got)
	}
	if env["GOMEMLIMIT"] != "460MiB" { // 90% of 512Mi
		t.Errorf("GOMEMLIMIT = %v, want 460MiB", env["GOMEMLIMIT"])
	}
	var mounted bool
	for _, v := range dig[[]any](t, objs["Deployment/rel-s3-exporter"], "spec", "template", "spec", "volumes") {
		if has(v, "secret") && dig[string](t, v, "secret", "secretName") == "s3-exporter-nats" {
			mounted = true
		}
	}
	if !mounted {
		t.Error("the NATS credentials Secret is not mounted")
	}
	for k := range objs {
		if strings.HasPrefix(k, "Secret/") {
			t.Errorf("the chart renders %s", k)
		}
	}

	// KEDA owns the replica count and watches the scans consumer.
	if has(objs["Deployment/rel-s3-exporter"], "spec", "replicas") {
		t.Error("Deployment sets replicas beside a ScaledObject")
	}
	trig := dig[map[string]any](t, objs["ScaledObject/rel-s3-exporter"], "spec", "triggers", 0)
	if trig["type"] != "nats-jetstream" || dig[string](t, trig, "metadata", "stream") != "ACME_SCANS" || dig[string](t, trig, "metadata", "consumer") != "exp" {
		t.Errorf("KEDA trigger %v, want nats-jetstream on ACME_SCANS/exp", trig)
	}

	// The PrometheusRule is the promtool-tested rules file.
	var rules struct {
		Groups []any `yaml:"groups"`
	}
	// …with the job matcher of absent() set to this release's Service.
	alerts := strings.ReplaceAll(string(readFile(t, "prometheus/alerts.yml")), `job="s3-exporter"`, `job="rel-s3-exporter"`)
	if !strings.Contains(alerts, `absent(s3exporter_cache_ready{job="rel-s3-exporter"})`) {
		t.Error(`deploy/prometheus/alerts.yml has no absent(s3exporter_cache_ready{job="s3-exporter"}) for the chart to scope`)
	}
	if err := yaml.Unmarshal([]byte(alerts), &rules); err != nil {
		t.Fatal(err)
	}
	pr := objs["PrometheusRule/rel-s3-exporter"]
	if got := dig[[]any](t, pr, "spec", "groups"); len(rules.Groups) == 0 || !reflect.DeepEqual(got, rules.Groups) {
		t.Error("PrometheusRule spec.groups differ from deploy/prometheus/alerts.yml")
	}
	if dig[string](t, objs["ServiceMonitor/rel-s3-exporter"], "metadata", "labels", "release") != "kps" {
		t.Error("serviceMonitor.labels not applied")
	}

	// The dashboard ConfigMap carries the dashboard for the sidecar.
	cm := objs["ConfigMap/rel-s3-exporter-dashboard"]
	if dig[string](t, cm, "metadata", "labels", "grafana_dashboard") != "1" {
		t.Error("dashboard ConfigMap lacks the sidecar label grafana_dashboard")
	}
	if got, want := dig[string](t, cm, "data", "s3-exporter.json"), strings.TrimRight(string(readFile(t, "grafana/s3-exporter.json")), "\n"); got != want {
		t.Error("dashboard ConfigMap differs from deploy/grafana/s3-exporter.json")
	}

	// NetworkPolicy: ingress only to the metrics port; egress DNS, NATS, HTTPS.
	np := objs["NetworkPolicy/rel-s3-exporter"]
	ingress := dig[[]any](t, np, "spec", "ingress")
	if len(ingress) != 1 || dig[string](t, ingress, 0, "ports", 0, "port") != "http-metrics" || len(dig[[]any](t, ingress, 0, "ports")) != 1 {
		t.Errorf("ingress %v, want the metrics port only", ingress)
	}
	var egressPorts []int
	for _, r := range dig[[]any](t, np, "spec", "egress") {
		for _, p := range dig[[]any](t, r, "ports") {
			egressPorts = append(egressPorts, dig[int](t, p, "port"))
		}
	}
	natsRule := dig[map[string]any](t, np, "spec", "egress", 1)
	if dig[int](t, natsRule, "ports", 0, "port") != 4222 ||
		dig[string](t, natsRule, "to", 0, "namespaceSelector", "matchLabels", "kubernetes.io/metadata.name") != "nats" {
		t.Errorf("NATS egress rule %v, want port 4222 to the nats namespace", natsRule)
	}
	slices.Sort(egressPorts)
	if !slices.Equal(egressPorts, []int{53, 53, 443, 4222}) {
		t.Errorf("egress ports %v, want DNS (53 UDP+TCP), HTTPS (443), NATS (4222)", egressPorts)
	}
	if got := dig[[]any](t, np, "spec", "policyTypes"); !slices.Equal(got, []any{"Ingress", "Egress"}) {
		t.Errorf("policyTypes %v", got)
	}
}

func TestHelmTemplateImage(t *testing.T) {
	digest := "sha256:" + strings.Repeat("ab", 32)
	for _, tc := range []struct {
		set               []string
		image, pullPolicy string
	}{
		{[]string{"image.tag=1.1.3"}, "prowlercloud/s3-exporter:1.1.3", "IfNotPresent"},
		{[]string{"image.tag=1.1.3", "image.digest=" + digest}, "prowlercloud/s3-exporter@" + digest, "IfNotPresent"},
		{[]string{"image.repository=registry.internal/s3-exporter", "image.digest=" + digest}, "registry.internal/s3-exporter@" + digest, "IfNotPresent"},
		{[]string{"image.tag=latest"}, "prowlercloud/s3-exporter:latest", "Always"},
	} {
		c := chartContainer(t, mustRender(t, tc.set...))
		if got := dig[string](t, c, "image"); got != tc.image {
			t.Errorf("%v: image %s, want %s", tc.set, got, tc.image)
		}
		if got := dig[string](t, c, "imagePullPolicy"); got != tc.pullPolicy {
			t.Errorf("%v: imagePullPolicy %s, want %s", tc.set, got, tc.pullPolicy)
		}
	}
}

func TestHelmTemplateGoMemLimit(t *testing.T) {
	for _, tc := range []struct {
		set  []string
		want any
	}{
		{[]string{"resources.limits.memory=2Gi"}, "1843MiB"},
		{[]string{"resources.limits.memory=2G"}, "1716MiB"},
		{[]string{"resources.limits.memory=1Gi", "goMemLimit.ratio=0.8"}, "819MiB"},
		{[]string{"goMemLimit.value=700MiB"}, "700MiB"},
		{[]string{"resources.limits=null"}, nil},
	} {
		env := chartEnv(t, chartContainer(t, mustRender(t, tc.set...)))
		if got := env["GOMEMLIMIT"]; got != tc.want {
			t.Errorf("%v: GOMEMLIMIT %v, want %v", tc.set, got, tc.want)
		}
	}
}

// TestHelmTemplateRefusesBadValues: a bad value stops the install with a
// message naming it, instead of rendering something that half works.
func TestHelmTemplateRefusesBadValues(t *testing.T) {
	for set, want := range map[string]string{
		"image.digest=sha256:abc":                  "image.digest",
		"config.S3EXPORTER_NATS_URL=nats://x:4222": "config.S3EXPORTER_NATS_URL is set by the chart",
		"config.S3EXPORTER_CREDENTIALS_KEY=k":      "config.S3EXPORTER_CREDENTIALS_KEY is set by the chart",
		"config.AWS_REGION=eu-west-1":              "use extraEnv",
		"resources.limits.memory=1Gb":              "resources.limits.memory",
	} {
		_, err := renderChart(t, set)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("--set %s: error %v, want one saying %q", set, err, want)
		}
	}
}

// TestChartHasNoSecretDefaults: nothing in the chart's folder looks like a
// credential, so an install cannot ship a placeholder over a real one.
func TestChartHasNoSecretDefaults(t *testing.T) {
	err := filepath.WalkDir(chartDir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b := readFile(t, p)
		for _, bad := range []string{"kind: Secret", "BEGIN NATS USER JWT", "NKEY SEED", "aws_secret_access_key"} {
			if bytes.Contains(b, []byte(bad)) {
				t.Errorf("%s contains %q", p, bad)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
