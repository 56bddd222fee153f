// Command containerd1-oracle prints what containerd 1.6's CRI plugin resolves a registry host
// to, with containerd's own code: remotes/docker/config.ConfigureHosts and HostDirFromRoot,
// set up as pkg/cri/server/image_pull.go (registryHosts) sets them up when config_path is set.
// See testenv/README.md for the command lines and JSON contract.
package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"

	"github.com/containerd/containerd/errdefs"
	"github.com/containerd/containerd/log"
	"github.com/containerd/containerd/remotes/docker"
	"github.com/containerd/containerd/remotes/docker/config"
	"github.com/sirupsen/logrus"

	"nrc.test/testenv/ctrdoracle"
)

type backend struct{}

func (backend) Module() string  { return "github.com/containerd/containerd" }
func (backend) Modes() []string { return []string{"cri"} }

// hostDirFromRoots is pkg/cri/server/image_pull.go's (unexported there): config_path is split
// with filepath.SplitList and the first root with a directory for the host wins.
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

func (backend) HostDir(hostsDir, mode, refHost string) (string, error) {
	dir, err := hostDirFromRoots(filepath.SplitList(hostsDir))(refHost)
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

	// As pkg/cri/server/image_pull.go registryHosts with config_path set (PullImage without
	// credentials in the request and no registry.configs auth: ParseAuth(nil) = "", "").
	hostOptions := config.HostOptions{}
	hostOptions.Credentials = func(host string) (string, string, error) { return "", "", nil }
	hostOptions.HostDir = hostDirFromRoots(filepath.SplitList(hostsDir))
	rhosts, err := config.ConfigureHosts(ctx, hostOptions)(refHost)

	var out []ctrdoracle.Host
	for _, h := range rhosts {
		oh := ctrdoracle.Host{Scheme: h.Scheme, Host: h.Host, Path: h.Path, Header: h.Header, Client: h.Client,
			Capabilities: capabilities(h.Capabilities)}
		if h.Client != nil {
			if t, ok := h.Client.Transport.(*http.Transport); ok {
				oh.Transport = t
			} else if h.Client.Transport != nil {
				return nil, col.entries, fmt.Errorf("oracle: unexpected transport type %T", h.Client.Transport)
			}
		}
		out = append(out, oh)
	}
	return out, col.entries, err
}

func capabilities(c docker.HostCapabilities) []string {
	out := []string{}
	if c.Has(docker.HostCapabilityPull) {
		out = append(out, "pull")
	}
	if c.Has(docker.HostCapabilityResolve) {
		out = append(out, "resolve")
	}
	if c.Has(docker.HostCapabilityPush) {
		out = append(out, "push")
	}
	return out
}

func main() { ctrdoracle.Main("containerd1-oracle", backend{}) }
