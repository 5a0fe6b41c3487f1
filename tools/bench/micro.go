package main

import (
	"fmt"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// microPackages hold the *_bench_test.go micro-benchmarks of the hot paths.
var microPackages = []string{
	"github.com/prowler-cloud/s3-exporter/exporter",
	"github.com/prowler-cloud/s3-exporter/internal/integration",
	"github.com/prowler-cloud/s3-exporter/event",
}

// microResult is one benchmark over every -count run.
type microResult struct {
	Pkg, Name string
	NsPerOp   []float64
	BPerOp    float64
	Allocs    float64
	MBps      float64
}

func (m microResult) ns() float64 { return median(m.NsPerOp) }

// runMicro runs the micro-benchmarks with go test.
func runMicro(count int, benchTime string) ([]microResult, error) {
	args := append([]string{"test", "-run", "^$", "-bench", ".", "-benchmem", "-count", strconv.Itoa(count), "-benchtime", benchTime}, microPackages...)
	out, err := exec.Command("go", args...).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	res := parseBench(string(out))
	if len(res) == 0 {
		return nil, fmt.Errorf("no benchmark results in:\n%s", out)
	}
	return res, nil
}

var benchLine = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+\d+\s+([\d.]+) ns/op(.*)$`)

// parseBench reads go test -bench output, merging the -count runs of each
// benchmark, in the order they first appear.
func parseBench(out string) []microResult {
	var order []string
	by := map[string]*microResult{}
	pkg := ""
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if p, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = p[strings.LastIndexByte(p, '/')+1:]
			continue
		}
		m := benchLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		ns, err := strconv.ParseFloat(m[2], 64)
		if err != nil {
			continue
		}
		key := pkg + "." + m[1]
		r := by[key]
		if r == nil {
			r = &microResult{Pkg: pkg, Name: m[1]}
			by[key] = r
			order = append(order, key)
		}
		r.NsPerOp = append(r.NsPerOp, ns)
		f := strings.Fields(m[3])
		for i := 0; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			switch f[i+1] {
			case "B/op":
				r.BPerOp = v
			case "allocs/op":
				r.Allocs = v
			case "MB/s":
				r.MBps = v
			}
		}
	}
	out2 := make([]microResult, 0, len(order))
	for _, k := range order {
		out2 = append(out2, *by[k])
	}
	return out2
}

// findMicro returns the named benchmark.
func findMicro(ms []microResult, name string) (microResult, bool) {
	for _, m := range ms {
		if m.Name == name {
			return m, true
		}
	}
	return microResult{}, false
}

// sortedMicro returns the results by package then name.
func sortedMicro(ms []microResult) []microResult {
	out := append([]microResult(nil), ms...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Pkg < out[j].Pkg })
	return out
}
