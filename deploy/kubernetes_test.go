package deploy

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

const kustomizeDir = "kubernetes/base"

type k8sObject struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name   string            `yaml:"name"`
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	file string
	node yaml.Node
}

type labelSelector struct {
	MatchLabels map[string]string `yaml:"matchLabels"`
}

type probe struct {
	HTTPGet struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"`
	} `yaml:"httpGet"`
}

type container struct {
	Name  string `yaml:"name"`
	Image string `yaml:"image"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	Env []struct {
		Name      string         `yaml:"name"`
		Value     string         `yaml:"value"`
		ValueFrom map[string]any `yaml:"valueFrom"`
	} `yaml:"env"`
	ReadinessProbe *probe `yaml:"readinessProbe"`
	LivenessProbe  *probe `yaml:"livenessProbe"`
	Resources      struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	SecurityContext struct {
		RunAsNonRoot             *bool `yaml:"runAsNonRoot"`
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
		Capabilities             struct {
			Drop []string `yaml:"drop"`
		} `yaml:"capabilities"`
	} `yaml:"securityContext"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		ReadOnly  bool   `yaml:"readOnly"`
	} `yaml:"volumeMounts"`
}

type deployment struct {
	Spec struct {
		Replicas *int          `yaml:"replicas"`
		Selector labelSelector `yaml:"selector"`
		Template struct {
			Metadata struct {
				Labels map[string]string `yaml:"labels"`
			} `yaml:"metadata"`
			Spec struct {
				TerminationGracePeriodSeconds *int `yaml:"terminationGracePeriodSeconds"`
				SecurityContext               struct {
					RunAsNonRoot *bool `yaml:"runAsNonRoot"`
					RunAsUser    *int  `yaml:"runAsUser"`
				} `yaml:"securityContext"`
				Affinity struct {
					PodAntiAffinity map[string][]struct {
						PodAffinityTerm struct {
							TopologyKey   string        `yaml:"topologyKey"`
							LabelSelector labelSelector `yaml:"labelSelector"`
						} `yaml:"podAffinityTerm"`
						TopologyKey   string        `yaml:"topologyKey"`
						LabelSelector labelSelector `yaml:"labelSelector"`
					} `yaml:"podAntiAffinity"`
				} `yaml:"affinity"`
				Containers []container `yaml:"containers"`
				Volumes    []struct {
					Name   string `yaml:"name"`
					Secret *struct {
						SecretName string `yaml:"secretName"`
					} `yaml:"secret"`
				} `yaml:"volumes"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type service struct {
	Spec struct {
		Selector map[string]string `yaml:"selector"`
		Ports    []struct {
			Name       string `yaml:"name"`
			Port       int    `yaml:"port"`
			TargetPort any    `yaml:"targetPort"`
		} `yaml:"ports"`
	} `yaml:"spec"`
}

// loadManifests parses every document of every YAML file in the kustomize
// directory, the kustomization included.
func loadManifests(t *testing.T) []k8sObject {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(kustomizeDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var objs []k8sObject
	for _, f := range files {
		dec := yaml.NewDecoder(bytes.NewReader(readFile(t, f)))
		for i := 0; ; i++ {
			var o k8sObject
			err := dec.Decode(&o.node)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s document %d: %v", f, i, err)
			}
			if o.node.Kind == 0 {
				continue // empty document
			}
			if err := o.node.Decode(&o); err != nil {
				t.Fatalf("%s document %d: %v", f, i, err)
			}
			if o.APIVersion == "" || o.Kind == "" {
				t.Errorf("%s document %d lacks apiVersion or kind", f, i)
			}
			o.file = filepath.Base(f)
			objs = append(objs, o)
		}
	}
	return objs
}

func decodeObj[T any](t *testing.T, o k8sObject) T {
	t.Helper()
	var v T
	if err := o.node.Decode(&v); err != nil {
		t.Fatalf("%s %s: %v", o.Kind, o.Metadata.Name, err)
	}
	return v
}

func byKind(t *testing.T, objs []k8sObject, kind string) k8sObject {
	t.Helper()
	var found []k8sObject
	for _, o := range objs {
		if o.Kind == kind {
			found = append(found, o)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d objects of kind %s, want 1", len(found), kind)
	}
	return found[0]
}

func TestKustomizationListsEveryManifest(t *testing.T) {
	objs := loadManifests(t)
	k := byKind(t, objs, "Kustomization")
	if k.file != "kustomization.yaml" {
		t.Errorf("Kustomization is in %s", k.file)
	}
	var kust struct {
		Resources []string `yaml:"resources"`
	}
	if err := k.node.Decode(&kust); err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, o := range objs {
		if o.Kind != "Kustomization" && !slices.Contains(files, o.file) {
			files = append(files, o.file)
		}
	}
	slices.Sort(files)
	listed := slices.Clone(kust.Resources)
	slices.Sort(listed)
	if !slices.Equal(files, listed) {
		t.Errorf("kustomization resources %v, manifest files %v", listed, files)
	}
	for _, r := range kust.Resources {
		if _, err := os.Stat(filepath.Join(kustomizeDir, r)); err != nil {
			t.Errorf("resource %s: %v", r, err)
		}
	}

	var kinds []string
	for _, o := range objs {
		kinds = append(kinds, o.APIVersion+" "+o.Kind)
	}
	slices.Sort(kinds)
	want := []string{
		"apps/v1 Deployment",
		"kustomize.config.k8s.io/v1beta1 Kustomization",
		"monitoring.coreos.com/v1 ServiceMonitor",
		"policy/v1 PodDisruptionBudget",
		"v1 Service",
		"v1 ServiceAccount",
	}
	if !slices.Equal(kinds, want) {
		t.Errorf("kinds %v, want %v", kinds, want)
	}
}

func env(c container, name string) (string, bool) {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value, true
		}
	}
	return "", false
}

func TestDeployment(t *testing.T) {
	objs := loadManifests(t)
	d := decodeObj[deployment](t, byKind(t, objs, "Deployment"))
	spec := d.Spec.Template.Spec

	if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Errorf("replicas %v, want 2", d.Spec.Replicas)
	}
	if !subset(d.Spec.Selector.MatchLabels, d.Spec.Template.Metadata.Labels) || len(d.Spec.Selector.MatchLabels) == 0 {
		t.Errorf("selector %v does not select the pod labels %v", d.Spec.Selector.MatchLabels, d.Spec.Template.Metadata.Labels)
	}
	if len(spec.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(spec.Containers))
	}
	c := spec.Containers[0]

	// Graceful termination outlasts the exporter's own shutdown grace.
	grace, ok := env(c, "S3EXPORTER_SHUTDOWN_GRACE")
	if !ok {
		t.Fatal("S3EXPORTER_SHUTDOWN_GRACE is not set")
	}
	g, err := time.ParseDuration(grace)
	if err != nil {
		t.Fatalf("S3EXPORTER_SHUTDOWN_GRACE %q: %v", grace, err)
	}
	if spec.TerminationGracePeriodSeconds == nil {
		t.Fatal("terminationGracePeriodSeconds is not set")
	}
	if tg := time.Duration(*spec.TerminationGracePeriodSeconds) * time.Second; tg <= g+10*time.Second {
		t.Errorf("terminationGracePeriodSeconds %v must exceed S3EXPORTER_SHUTDOWN_GRACE %v by more than 10s", tg, g)
	}

	// Probes on the metrics port.
	port := 0
	portName := ""
	for _, p := range c.Ports {
		if p.ContainerPort == 9090 {
			port, portName = p.ContainerPort, p.Name
		}
	}
	if port != 9090 {
		t.Fatalf("no container port 9090: %+v", c.Ports)
	}
	if addr, _ := env(c, "S3EXPORTER_METRICS_ADDR"); addr != "" && !strings.HasSuffix(addr, ":"+strconv.Itoa(port)) {
		t.Errorf("S3EXPORTER_METRICS_ADDR %q is not port %d", addr, port)
	}
	for name, p := range map[string]*probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
		if p == nil {
			t.Errorf("no %s probe", name)
			continue
		}
		want := map[string]string{"readiness": "/readyz", "liveness": "/healthz"}[name]
		if p.HTTPGet.Path != want {
			t.Errorf("%s probe path %q, want %q", name, p.HTTPGet.Path, want)
		}
		if p.HTTPGet.Port != portName && p.HTTPGet.Port != port {
			t.Errorf("%s probe port %v, want %s or %d", name, p.HTTPGet.Port, portName, port)
		}
	}

	// Resources.
	for _, r := range []string{"cpu", "memory"} {
		if c.Resources.Requests[r] == "" {
			t.Errorf("no %s request", r)
		}
	}
	if c.Resources.Limits["memory"] == "" {
		t.Error("no memory limit")
	}

	// Security.
	if p := spec.SecurityContext.RunAsNonRoot; p == nil || !*p {
		t.Error("pod securityContext.runAsNonRoot is not true")
	}
	if u := spec.SecurityContext.RunAsUser; u == nil || *u == 0 {
		t.Error("pod securityContext.runAsUser is not a non-root uid")
	}
	sc := c.SecurityContext
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("readOnlyRootFilesystem is not true")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Error("allowPrivilegeEscalation is not false")
	}
	if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Error("container runAsNonRoot is not true")
	}
	if !slices.Equal(sc.Capabilities.Drop, []string{"ALL"}) {
		t.Errorf("capabilities.drop %v, want [ALL]", sc.Capabilities.Drop)
	}

	// Anti-affinity spreads the replicas over nodes.
	anti := false
	for _, terms := range spec.Affinity.PodAntiAffinity {
		for _, term := range terms {
			k, sel := term.PodAffinityTerm.TopologyKey, term.PodAffinityTerm.LabelSelector
			if k == "" {
				k, sel = term.TopologyKey, term.LabelSelector
			}
			if k == "kubernetes.io/hostname" && len(sel.MatchLabels) > 0 && subset(sel.MatchLabels, d.Spec.Template.Metadata.Labels) {
				anti = true
			}
		}
	}
	if !anti {
		t.Error("no pod anti-affinity on kubernetes.io/hostname selecting the exporter's pods")
	}

	// NATS credentials: the Secret s3-exporter-nats, created beside the base
	// (the base ships none, so applying it never replaces a real one with a
	// placeholder), mounted at /etc/nats and named by S3EXPORTER_NATS_CREDS.
	credsPath, _ := env(c, "S3EXPORTER_NATS_CREDS")
	if !strings.HasPrefix(credsPath, "/etc/nats/") {
		t.Fatalf("S3EXPORTER_NATS_CREDS %q is not under /etc/nats", credsPath)
	}
	mounted := ""
	for _, m := range c.VolumeMounts {
		if m.MountPath == "/etc/nats" {
			if !m.ReadOnly {
				t.Error("/etc/nats is not mounted read-only")
			}
			for _, v := range spec.Volumes {
				if v.Name == m.Name && v.Secret != nil {
					mounted = v.Secret.SecretName
				}
			}
		}
	}
	if mounted != "s3-exporter-nats" {
		t.Errorf("/etc/nats mounts secret %q, want s3-exporter-nats (the name docs/operations.md gives)", mounted)
	}
	for _, o := range objs {
		if o.Kind == "Secret" {
			t.Errorf("the base ships Secret %s (in %s): it would overwrite the real one", o.Metadata.Name, o.file)
		}
	}
	// A pinned image, never latest (with IfNotPresent a node would keep
	// whatever latest it pulled first).
	if _, tag, ok := strings.Cut(c.Image, ":"); !ok || tag == "" || tag == "latest" {
		t.Errorf("base image %q: want a version tag", c.Image)
	}
	if _, ok := env(c, "S3EXPORTER_CONSUMER_NAME"); !ok {
		t.Error("S3EXPORTER_CONSUMER_NAME not set: replicas must share one durable consumer")
	}
}

func TestServicePDBAndServiceMonitorSelectThePods(t *testing.T) {
	objs := loadManifests(t)
	d := decodeObj[deployment](t, byKind(t, objs, "Deployment"))
	podLabels := d.Spec.Template.Metadata.Labels

	svcObj := byKind(t, objs, "Service")
	svc := decodeObj[service](t, svcObj)
	if len(svc.Spec.Selector) == 0 || !subset(svc.Spec.Selector, podLabels) {
		t.Errorf("service selector %v does not select pods %v", svc.Spec.Selector, podLabels)
	}
	var portNames []string
	for _, p := range svc.Spec.Ports {
		portNames = append(portNames, p.Name)
		if p.Port != 9090 {
			t.Errorf("service port %s is %d, want 9090", p.Name, p.Port)
		}
	}

	pdb := decodeObj[struct {
		Spec struct {
			MinAvailable any           `yaml:"minAvailable"`
			Selector     labelSelector `yaml:"selector"`
		} `yaml:"spec"`
	}](t, byKind(t, objs, "PodDisruptionBudget"))
	if pdb.Spec.MinAvailable != 1 {
		t.Errorf("PDB minAvailable %v, want 1", pdb.Spec.MinAvailable)
	}
	if len(pdb.Spec.Selector.MatchLabels) == 0 || !subset(pdb.Spec.Selector.MatchLabels, podLabels) {
		t.Errorf("PDB selector %v does not select pods %v", pdb.Spec.Selector.MatchLabels, podLabels)
	}

	sm := decodeObj[struct {
		Spec struct {
			Selector  labelSelector `yaml:"selector"`
			Endpoints []struct {
				Port string `yaml:"port"`
				Path string `yaml:"path"`
			} `yaml:"endpoints"`
		} `yaml:"spec"`
	}](t, byKind(t, objs, "ServiceMonitor"))
	if len(sm.Spec.Selector.MatchLabels) == 0 || !subset(sm.Spec.Selector.MatchLabels, svcObj.Metadata.Labels) {
		t.Errorf("ServiceMonitor selector %v does not select the service labels %v", sm.Spec.Selector.MatchLabels, svcObj.Metadata.Labels)
	}
	if len(sm.Spec.Endpoints) != 1 || !slices.Contains(portNames, sm.Spec.Endpoints[0].Port) || sm.Spec.Endpoints[0].Path != "/metrics" {
		t.Errorf("ServiceMonitor endpoints %+v, want /metrics on one of %v", sm.Spec.Endpoints, portNames)
	}
	// The alerts and dashboard expect job="s3-exporter": the Service name.
	if svcObj.Metadata.Name != "s3-exporter" {
		t.Errorf("service name %q, want s3-exporter (the job label)", svcObj.Metadata.Name)
	}
}

const productionOverlay = "kubernetes/overlays/production"

// kustomizeBuild runs a real `kustomize build` of dir and returns its objects.
func kustomizeBuild(t *testing.T, dir string) []map[string]any {
	t.Helper()
	out, err := runTool(t, ".", goTool(t, kustomizePkg), "build", dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	var objs []map[string]any
	dec := yaml.NewDecoder(strings.NewReader(out))
	for {
		var o map[string]any
		if err := dec.Decode(&o); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("kustomize build %s: output is not YAML: %v", dir, err)
		}
		objs = append(objs, o)
	}
	return objs
}

func builtContainer(t *testing.T, objs []map[string]any) map[string]any {
	t.Helper()
	for _, o := range objs {
		if o["kind"] == "Deployment" {
			return dig[map[string]any](t, o, "spec", "template", "spec", "containers", 0)
		}
	}
	t.Fatal("no Deployment built")
	return nil
}

// TestKustomizeBuild renders the base with a real kustomize.
func TestKustomizeBuild(t *testing.T) {
	objs := kustomizeBuild(t, kustomizeDir)
	var kinds []string
	for _, o := range objs {
		kinds = append(kinds, o["kind"].(string))
	}
	slices.Sort(kinds)
	if want := []string{"Deployment", "PodDisruptionBudget", "Service", "ServiceAccount", "ServiceMonitor"}; !slices.Equal(kinds, want) {
		t.Errorf("base builds %v, want %v (no Secret)", kinds, want)
	}
	c := builtContainer(t, objs)
	if img := dig[string](t, c, "image"); img != "prowlercloud/s3-exporter:1.1.0" {
		t.Errorf("base image %s", img)
	}
}

// TestProductionOverlay builds the documented production overlay with a real
// kustomize: its image entry must match the base's image name (kustomize
// ignores one that matches nothing, silently), and its settings must land.
func TestProductionOverlay(t *testing.T) {
	objs := kustomizeBuild(t, productionOverlay)
	c := builtContainer(t, objs)
	if img := dig[string](t, c, "image"); img != "prowlercloud/s3-exporter:1.1.0" || dig[string](t, c, "imagePullPolicy") != "IfNotPresent" {
		t.Errorf("overlay image %s (%s)", img, c["imagePullPolicy"])
	}
	var natsURL []string
	for _, e := range dig[[]any](t, c, "env") {
		if dig[string](t, e, "name") == "S3EXPORTER_NATS_URL" {
			natsURL = append(natsURL, dig[string](t, e, "value"))
		}
	}
	if !slices.Equal(natsURL, []string{"nats://nats.nats.svc:4222"}) {
		t.Errorf("S3EXPORTER_NATS_URL %v, want the overlay's once", natsURL)
	}
	for _, o := range objs {
		if ns := dig[string](t, o, "metadata", "namespace"); ns != "prowler" {
			t.Errorf("%s in namespace %q", o["kind"], ns)
		}
		if o["kind"] == "Secret" {
			t.Error("the overlay builds a Secret")
		}
		if o["kind"] == "Deployment" && dig[int](t, o, "spec", "replicas") != 3 {
			t.Errorf("replicas %v, want 3", dig[int](t, o, "spec", "replicas"))
		}
	}

	// The overlay's image entry really applies: a copy of the tree whose
	// overlay asks for another tag and a digest builds with them.
	root := t.TempDir()
	copyTree(t, "kubernetes", filepath.Join(root, "kubernetes"))
	kpath := filepath.Join(root, productionOverlay, "kustomization.yaml")
	k := string(readFile(t, kpath))
	digest := "sha256:" + strings.Repeat("0f", 32)
	edited := strings.Replace(k, `newTag: "1.1.0"`, `newTag: "9.9.9"`, 1)
	if edited == k {
		t.Fatalf("%s has no newTag \"1.1.0\" to edit", kpath)
	}
	if err := os.WriteFile(kpath, []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	if img := dig[string](t, builtContainer(t, kustomizeBuild(t, filepath.Join(root, productionOverlay))), "image"); img != "prowlercloud/s3-exporter:9.9.9" {
		t.Errorf("overlay asking for 9.9.9 builds image %s: its images entry matches nothing", img)
	}
	edited = strings.Replace(k, `newTag: "1.1.0"`, `digest: "`+digest+`"`, 1)
	if err := os.WriteFile(kpath, []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	if img := dig[string](t, builtContainer(t, kustomizeBuild(t, filepath.Join(root, productionOverlay))), "image"); img != "prowlercloud/s3-exporter@"+digest {
		t.Errorf("overlay pinning a digest builds image %s", img)
	}
}

func copyTree(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o755)
		}
		return os.WriteFile(filepath.Join(to, rel), readFile(t, p), 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func subset(sub, of map[string]string) bool {
	for k, v := range sub {
		if of[k] != v {
			return false
		}
	}
	return true
}
