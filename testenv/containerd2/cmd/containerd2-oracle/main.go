// Command containerd2-oracle prints what containerd 2's CRI plugin resolves a registry host to,
// with containerd's own code: core/remotes/docker/config.ConfigureHosts and HostDirFromRoot,
// set up as the CRI image service sets them up (internal/cri/server/images/image_pull.go):
//
//   - mode "transfer" (default; the CRI default since 2.0 unless the config forces local pulls):
//     pullImageWithTransferService -> core/transfer/registry.NewOCIRegistry with
//     WithHostDir(config_path): HostDirFromRoot(config_path) with config_path taken as ONE
//     directory (a ':'-joined list is not split).
//   - mode "local" (use_local_image_pull = true, or a local-pull-only option in the config):
//     registryHosts: config_path split with filepath.SplitList (hostDirFromRoots).
//
// See testenv/README.md for the command lines and JSON contract.
package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"reflect"
	"unsafe"

	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/containerd/v2/core/remotes/docker/config"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"github.com/sirupsen/logrus"

	"nrc.test/testenv/ctrdoracle"
)

type backend struct{}

func (backend) Module() string  { return "github.com/containerd/containerd/v2" }
func (backend) Modes() []string { return []string{"transfer", "local"} }

// hostDirFromRoots is internal/cri/server/images/image_pull.go's (unexported there).
func hostDirFromRoots(roots []string) func(string) (string, error) {
	rootfn := make([]func(string) (string, error), len(roots))
	for i := range roots {
		rootfn[i] = config.HostDirFromRoot(roots[i])
	}
	return func(host string) (dir string, err error) {
		for _, fn := range rootfn {
			dir, err = fn(host)
			if (err != nil && !errdefs.IsNotFound(err)) || (dir != "") {
				break
			}
		}
		return
	}
}

func hostDirFunc(hostsDir, mode string) func(string) (string, error) {
	if mode == "local" {
		return hostDirFromRoots(filepath.SplitList(hostsDir))
	}
	return config.HostDirFromRoot(hostsDir)
}

func (backend) HostDir(hostsDir, mode, refHost string) (string, error) {
	dir, err := hostDirFunc(hostsDir, mode)(refHost)
	if errdefs.IsNotFound(err) {
		return "", nil
	}
	return dir, err
}

type collector struct{ entries []ctrdoracle.LogEntry }

func (c *collector) Levels() []logrus.Level { return logrus.AllLevels }
func (c *collector) Fire(e *logrus.Entry) error {
	le := ctrdoracle.LogEntry{Level: e.Level.String(), Msg: e.Message, Fields: map[string]string{}}
	for k, v := range e.Data {
		if err, ok := v.(error); ok {
			le.Fields[k] = err.Error()
		} else {
			le.Fields[k] = fmt.Sprint(v)
		}
	}
	c.entries = append(c.entries, le)
	return nil
}

func (backend) Hosts(hostsDir, mode, refHost string) ([]ctrdoracle.Host, []ctrdoracle.LogEntry, error) {
	logger := logrus.New()
	logger.Out = io.Discard
	logger.Level = logrus.TraceLevel
	col := &collector{}
	logger.AddHook(col)
	ctx := log.WithLogger(context.Background(), logrus.NewEntry(logger))

	// PullImage without credentials in the request: the CRI credentials callback yields "", "".
	creds := func(host string) (string, string, error) { return "", "", nil }
	var hostOptions config.HostOptions
	if mode == "local" {
		// registryHosts (no global registry.headers in the config: WithAuthHeader(nil))
		hostOptions = config.HostOptions{UpdateClient: func(*http.Client) error { return nil }}
		hostOptions.Credentials = creds
		hostOptions.HostDir = hostDirFromRoots(filepath.SplitList(hostsDir))
		hostOptions.AuthorizerOpts = []docker.AuthorizerOpt{docker.WithAuthHeader(nil)}
	} else {
		// core/transfer/registry.NewOCIRegistry(ctx, ref, WithCredentials, WithHeaders, WithHostDir(config_path))
		hostOptions = config.HostOptions{}
		if hostsDir != "" {
			hostOptions.HostDir = config.HostDirFromRoot(hostsDir)
		}
		hostOptions.Credentials = creds
		hostOptions.UpdateClient = func(*http.Client) error { return nil }
	}
	rhosts, err := config.ConfigureHosts(ctx, hostOptions)(refHost)

	var out []ctrdoracle.Host
	for _, h := range rhosts {
		oh := ctrdoracle.Host{Scheme: h.Scheme, Host: h.Host, Path: h.Path, Header: h.Header, Client: h.Client,
			Capabilities: capabilities(h.Capabilities)}
		if h.Client != nil && h.Client.Transport != nil {
			rt := h.Client.Transport
			if inner, ok := unwrapFallback(rt); ok {
				oh.HTTPFallback = true
				rt = inner
			}
			t, ok := rt.(*http.Transport)
			if !ok {
				return nil, col.entries, fmt.Errorf("oracle: unexpected transport type %T", rt)
			}
			oh.Transport = t
		}
		out = append(out, oh)
	}
	return out, col.entries, err
}

// unwrapFallback returns the transport inside docker.NewHTTPFallback's unexported wrapper.
func unwrapFallback(rt http.RoundTripper) (http.RoundTripper, bool) {
	v := reflect.ValueOf(rt)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct || v.Type().String() != "*docker.httpFallback" {
		return nil, false
	}
	f := v.Elem().FieldByName("super")
	if !f.IsValid() {
		return nil, false
	}
	inner := reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem().Interface()
	irt, ok := inner.(http.RoundTripper)
	return irt, ok
}

func capabilities(c docker.HostCapabilities) []string {
	out := []string{}
	for _, x := range []struct {
		c    docker.HostCapabilities
		name string
	}{
		{docker.HostCapabilityPull, "pull"},
		{docker.HostCapabilityResolve, "resolve"},
		{docker.HostCapabilityPush, "push"},
		{docker.HostCapabilityReferrers, "referrers"},
	} {
		if c.Has(x.c) {
			out = append(out, x.name)
		}
	}
	return out
}

func main() { ctrdoracle.Main("containerd2-oracle", backend{}) }
