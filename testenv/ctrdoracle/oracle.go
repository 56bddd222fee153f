// Package ctrdoracle is the command line and JSON output shared by containerd1-oracle and
// containerd2-oracle. It holds no resolver logic: each oracle's main package calls its own
// containerd version's config.ConfigureHosts / config.HostDirFromRoot and hands the real
// result here to be printed (see testenv/README.md for the contract).
package ctrdoracle

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime/debug"
	"strings"
)

// Host is one docker.RegistryHost as returned by the version's ConfigureHosts.
type Host struct {
	Scheme       string
	Host         string
	Path         string
	Capabilities []string
	Header       http.Header
	Client       *http.Client
	// Transport is the innermost *http.Transport (behind containerd 2's HTTP fallback).
	Transport *http.Transport
	// HTTPFallback: containerd 2 wrapped the transport in docker.NewHTTPFallback.
	HTTPFallback bool
}

// LogEntry is one line containerd logged through log.G(ctx) while answering.
type LogEntry struct {
	Level  string            `json:"level"`
	Msg    string            `json:"msg"`
	Fields map[string]string `json:"fields"`
}

// Backend is one containerd version's real code.
type Backend interface {
	// Module and Version name the containerd module (from build info).
	Module() string
	// Modes lists the accepted --mode values; the first is the default.
	Modes() []string
	// HostDir runs the HostDir function that mode's caller builds from hostsDir.
	// dir == "" and err == nil: no directory (errdefs.ErrNotFound).
	HostDir(hostsDir, mode, refHost string) (dir string, err error)
	// Hosts runs ConfigureHosts as that mode's caller configures it, for refHost,
	// collecting what containerd logs.
	Hosts(hostsDir, mode, refHost string) ([]Host, []LogEntry, error)
}

type HostJSON struct {
	Scheme       string              `json:"scheme"`
	Host         string              `json:"host"`
	Path         string              `json:"path"`
	Capabilities []string            `json:"capabilities"`
	SkipVerify   bool                `json:"skipVerify"`
	CASubjects   []string            `json:"caSubjects"`
	ClientCerts  int                 `json:"clientCerts"`
	Header       map[string][]string `json:"header"`
	HTTPFallback bool                `json:"httpFallback"`
}

type HostsResult struct {
	Error *string    `json:"error"`
	Dir   *string    `json:"dir"`
	Hosts []HostJSON `json:"hosts"`
	Logs  []LogEntry `json:"logs"`
}

type HostDirResult struct {
	Dir   *string `json:"dir"`
	Error *string `json:"error"`
}

type batchRequest struct {
	ID       json.RawMessage `json:"id,omitempty"`
	Op       string          `json:"op"`
	HostsDir string          `json:"hostsDir"`
	Mode     string          `json:"mode,omitempty"`
	Hosts    []string        `json:"hosts"`
}

type batchResponse struct {
	ID      json.RawMessage `json:"id,omitempty"`
	Results any             `json:"results"`
}

type requestError struct {
	ID           json.RawMessage `json:"id,omitempty"`
	RequestError string          `json:"requestError"`
}

func strp(s string) *string { return &s }

var systemSubjects = func() map[string]int {
	m := map[string]int{}
	if pool, err := x509.SystemCertPool(); err == nil && pool != nil {
		//lint:ignore SA1019 only certificates added from PEM matter here
		for _, s := range pool.Subjects() { //nolint:staticcheck
			m[string(s)]++
		}
	}
	return m
}()

func subjectString(raw []byte) string {
	var rdn pkix.RDNSequence
	if _, err := asn1.Unmarshal(raw, &rdn); err != nil {
		return fmt.Sprintf("<unparseable subject: %v>", err)
	}
	var n pkix.Name
	n.FillFromRDNSequence(&rdn)
	return n.String()
}

// caSubjects lists the subjects in pool that were added to the system pool containerd
// starts from (system roots are left out), in the pool's order.
func caSubjects(pool *x509.CertPool) []string {
	out := []string{}
	if pool == nil {
		return out
	}
	left := map[string]int{}
	for k, v := range systemSubjects {
		left[k] = v
	}
	for _, s := range pool.Subjects() { //nolint:staticcheck
		if left[string(s)] > 0 {
			left[string(s)]--
			continue
		}
		out = append(out, subjectString(s))
	}
	return out
}

func toJSON(h Host) HostJSON {
	j := HostJSON{
		Scheme: h.Scheme, Host: h.Host, Path: h.Path,
		Capabilities: h.Capabilities, CASubjects: []string{}, Header: map[string][]string{},
		HTTPFallback: h.HTTPFallback,
	}
	if j.Capabilities == nil {
		j.Capabilities = []string{}
	}
	for k, v := range h.Header {
		j.Header[k] = v
	}
	var tc *tls.Config
	if h.Transport != nil {
		tc = h.Transport.TLSClientConfig
	}
	if tc != nil {
		j.SkipVerify = tc.InsecureSkipVerify
		j.CASubjects = caSubjects(tc.RootCAs)
		j.ClientCerts = len(tc.Certificates)
	}
	return j
}

func errp(err error) *string {
	if err == nil {
		return nil
	}
	return strp(err.Error())
}

func hostsFor(b Backend, hostsDir, mode string, refs []string) map[string]HostsResult {
	out := map[string]HostsResult{}
	for _, ref := range refs {
		r := HostsResult{Hosts: []HostJSON{}, Logs: []LogEntry{}}
		if dir, err := b.HostDir(hostsDir, mode, ref); err == nil && dir != "" {
			r.Dir = strp(dir)
		}
		hosts, logs, err := b.Hosts(hostsDir, mode, ref)
		r.Error = errp(err)
		if logs != nil {
			r.Logs = logs
		}
		for _, h := range hosts {
			r.Hosts = append(r.Hosts, toJSON(h))
		}
		out[ref] = r
	}
	return out
}

func hostDirFor(b Backend, hostsDir, mode string, refs []string) map[string]HostDirResult {
	out := map[string]HostDirResult{}
	for _, ref := range refs {
		dir, err := b.HostDir(hostsDir, mode, ref)
		r := HostDirResult{Error: errp(err)}
		if dir != "" {
			r.Dir = strp(dir)
		}
		out[ref] = r
	}
	return out
}

func emit(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

func die(name string, code int, format string, args ...any) {
	fmt.Fprintf(os.Stderr, name+": "+format+"\n", args...)
	os.Exit(code)
}

func validMode(b Backend, mode string) (string, error) {
	if mode == "" {
		return b.Modes()[0], nil
	}
	for _, m := range b.Modes() {
		if m == mode {
			return mode, nil
		}
	}
	return "", fmt.Errorf("unknown mode %q (want one of %s)", mode, strings.Join(b.Modes(), ", "))
}

// Main runs the oracle's command line.
func Main(name string, b Backend) {
	usage := func() {
		fmt.Fprintf(os.Stderr, `usage:
  %[1]s hosts   --hosts-dir DIR[:DIR...] [--mode %[2]s] REF_HOST...
  %[1]s hostdir --hosts-dir DIR[:DIR...] [--mode %[2]s] REF_HOST...
  %[1]s batch   (JSON lines on stdin, one JSON line per request on stdout)
  %[1]s version
`, name, strings.Join(b.Modes(), "|"))
		os.Exit(2)
	}
	if len(os.Args) < 2 {
		usage()
	}
	cmd := os.Args[1]
	switch cmd {
	case "hosts", "hostdir":
		fs := flag.NewFlagSet(cmd, flag.ExitOnError)
		hostsDir := fs.String("hosts-dir", "", "the CRI registry config_path (a directory, or a list joined with ':')")
		mode := fs.String("mode", b.Modes()[0], "which caller's set-up of ConfigureHosts to mirror")
		_ = fs.Parse(os.Args[2:])
		if *hostsDir == "" {
			die(name, 2, "%s: --hosts-dir is required", cmd)
		}
		if fs.NArg() == 0 {
			die(name, 2, "%s: at least one REF_HOST is required", cmd)
		}
		m, err := validMode(b, *mode)
		if err != nil {
			die(name, 2, "%s: %v", cmd, err)
		}
		var out any
		if cmd == "hosts" {
			out = hostsFor(b, *hostsDir, m, fs.Args())
		} else {
			out = hostDirFor(b, *hostsDir, m, fs.Args())
		}
		if err := emit(os.Stdout, out); err != nil {
			die(name, 1, "%v", err)
		}
	case "version":
		v := "unknown"
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, d := range bi.Deps {
				if d.Path == b.Module() {
					v = d.Version
					if d.Replace != nil {
						v = d.Replace.Version
					}
				}
			}
		}
		_ = emit(os.Stdout, map[string]any{"module": b.Module(), "version": v, "modes": b.Modes()})
	case "batch":
		batch(name, b)
	case "-h", "--help", "help":
		usage()
	default:
		die(name, 2, "unknown command %q", cmd)
	}
}

func batch(name string, b Backend) {
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	w := bufio.NewWriter(os.Stdout)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var req batchRequest
		if err := json.Unmarshal([]byte(line), &req); err != nil {
			_ = emit(w, requestError{RequestError: "invalid request JSON: " + err.Error()})
			w.Flush()
			continue
		}
		mode, err := validMode(b, req.Mode)
		switch {
		case err != nil:
			_ = emit(w, requestError{ID: req.ID, RequestError: err.Error()})
		case req.HostsDir == "":
			_ = emit(w, requestError{ID: req.ID, RequestError: "\"hostsDir\" is required"})
		case req.Op == "hosts":
			_ = emit(w, batchResponse{ID: req.ID, Results: hostsFor(b, req.HostsDir, mode, req.Hosts)})
		case req.Op == "hostdir":
			_ = emit(w, batchResponse{ID: req.ID, Results: hostDirFor(b, req.HostsDir, mode, req.Hosts)})
		default:
			_ = emit(w, requestError{ID: req.ID, RequestError: fmt.Sprintf("unknown op %q (want \"hosts\" or \"hostdir\")", req.Op)})
		}
		w.Flush()
	}
	if err := sc.Err(); err != nil {
		die(name, 1, "batch: reading stdin: %v", err)
	}
}
