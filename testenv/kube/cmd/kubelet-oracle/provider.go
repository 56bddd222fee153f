// The "provider" op: which credentials the kubelet tries for an image when a credential provider
// plugin (KEP-2133) is configured beside its docker config files. Nothing of the plugin path is
// replicated: the process registers the CredentialProviderConfig once, as the kubelet does at start
// (k8s.io/kubernetes/pkg/credentialprovider/plugin.RegisterCredentialProviderPlugins: the same
// validation, the same "executable missing" failure), and each lookup goes through the image
// manager's keyring, secrets.MakeDockerKeyring(pullSecrets, UnionDockerKeyring{node keyring,
// plugin.NewExternalCredentialProviderDockerKeyring(...)}): config.json first, then the plugins,
// each plugin answer matched by its own BasicDockerKeyring, the plugin really exec'd with the
// request on stdin, its answer cached (or not) by the plugin provider's own cache.
//
// The node keyring reads the host root's files inside chroot(2), as the "node" op does; the plugin
// runs outside it (on this machine's /), so its executable and its state are real paths here.
// The registration is global to a process (the kubelet's too), so every distinct
// (HOME, config, bin dir) gets its own long-lived worker process.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"

	authenticationv1 "k8s.io/api/authentication/v1"
	v1 "k8s.io/api/core/v1"
	"k8s.io/component-base/metrics/legacyregistry"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/pkg/credentialprovider"
	"k8s.io/kubernetes/pkg/credentialprovider/plugin"
	"k8s.io/kubernetes/pkg/credentialprovider/secrets"
)

// The pod the oracle pulls for: any values do; without tokenAttributes the plugin never sees them.
const (
	podNamespace = "default"
	podName      = "kubelet-oracle"
	podUID       = "00000000-0000-0000-0000-000000000001"
)

// providerInfo is what the kubelet's plugin machinery did for one request.
type providerInfo struct {
	// RegisterError: RegisterCredentialProviderPlugins failed (the kubelet exits at start).
	RegisterError *string `json:"registerError"`
	// Execs: plugin executions during this request (kubelet_credential_provider_plugin_duration count).
	Execs uint64 `json:"execs"`
	// Errors: failed executions (kubelet_credential_provider_plugin_errors_total): a non-zero exit or the timeout.
	Errors float64 `json:"errors"`
	// Log: what the kubelet's code logged meanwhile (klog, errors and warnings at the default verbosity).
	Log []string `json:"log"`
}

var (
	registered  bool
	registerErr error
	klogBuf     lockedBuffer
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	lines := []string{}
	for _, line := range strings.Split(strings.TrimRight(l.b.String(), "\n"), "\n") {
		if line != "" {
			lines = append(lines, line)
		}
	}
	l.b.Reset()
	return lines
}

// captureKlog sends the kubelet code's log lines to a buffer (one copy of each line, not on stderr).
func captureKlog() {
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	for name, value := range map[string]string{"logtostderr": "false", "alsologtostderr": "false", "stderrthreshold": "FATAL", "one_output": "true"} {
		if err := fs.Set(name, value); err != nil {
			die(3, "klog flag %s: %v", name, err)
		}
	}
	klog.SetOutput(&klogBuf)
}

// registerProvider does, once per process, what the kubelet does at start with
// --image-credential-provider-config and --image-credential-provider-bin-dir.
func registerProvider(config, binDir string) {
	if registered {
		return
	}
	registered = true
	captureKlog()
	noToken := func(namespace, name string, tr *authenticationv1.TokenRequest) (*authenticationv1.TokenRequest, error) {
		return nil, fmt.Errorf("kubelet-oracle: no service account tokens (tokenAttributes are not supported here)")
	}
	noServiceAccount := func(namespace, name string) (*v1.ServiceAccount, error) {
		return nil, fmt.Errorf("kubelet-oracle: no service accounts (tokenAttributes are not supported here)")
	}
	registerErr = plugin.RegisterCredentialProviderPlugins(config, binDir, noToken, noServiceAccount)
}

// pluginCounters sums the kubelet's plugin metrics over every plugin.
func pluginCounters() (execs uint64, errs float64) {
	families, err := legacyregistry.DefaultGatherer.Gather()
	if err != nil {
		die(3, "gathering the kubelet's metrics: %v", err)
	}
	for _, mf := range families {
		switch mf.GetName() {
		case "kubelet_credential_provider_plugin_duration":
			for _, m := range mf.GetMetric() {
				execs += m.GetHistogram().GetSampleCount()
			}
		case "kubelet_credential_provider_plugin_errors_total":
			for _, m := range mf.GetMetric() {
				errs += m.GetCounter().GetValue()
			}
		}
	}
	return execs, errs
}

// hostRootKeyring is the kubelet's node keyring (config.json search) reading the host root's
// files: each lookup enters the host root and leaves it again.
type hostRootKeyring struct {
	dir, cwd string
	inner    credentialprovider.DockerKeyring
}

func (k hostRootKeyring) Lookup(image string) (out []credentialprovider.TrackedAuthConfig, ok bool) {
	if err := inHostRoot(k.dir, k.cwd, func() error {
		out, ok = k.inner.Lookup(image)
		return nil
	}); err != nil {
		die(3, "node keyring: %v", err)
	}
	return out, ok
}

func handleProvider(req request) (*result, error) {
	if req.HostRoot == "" || req.ProviderConfig == "" || req.ProviderBinDir == "" {
		return nil, fmt.Errorf("provider: \"hostRoot\", \"providerConfig\" and \"providerBinDir\" are required")
	}
	registerProvider(req.ProviderConfig, req.ProviderBinDir)
	res := newResult(req.ID)
	info := &providerInfo{Log: []string{}}
	res.Provider = info
	if registerErr != nil {
		info.RegisterError = strp(registerErr.Error())
		info.Log = klogBuf.take()
		return res, nil
	}
	n, err := resolveNode(req)
	if err != nil {
		return nil, err
	}
	rootDir, home, cwd, hostRoot, secs := n.rootDir, n.home, n.cwd, n.hostRoot, n.secrets
	// Which file the kubelet reads (file, searched, error), as the "node" op reports it.
	if err := inHostRoot(hostRoot, cwd, func() error {
		_, _, err := searchInside(res, rootDir, home)
		return err
	}); err != nil {
		return nil, err
	}

	klogBuf.take()
	execs0, errs0 := pluginCounters()
	// pkg/kubelet/images/image_manager.go: MakeDockerKeyring(pullSecrets,
	// UnionDockerKeyring{m.nodeKeyring, NewExternalCredentialProviderDockerKeyring(pod...)}).
	node := hostRootKeyring{dir: hostRoot, cwd: cwd, inner: credentialprovider.NewDefaultDockerKeyring()}
	external := plugin.NewExternalCredentialProviderDockerKeyring(podNamespace, podName, podUID, "")
	kr, err := secrets.MakeDockerKeyring(secs, credentialprovider.UnionDockerKeyring{node, external})
	if err != nil {
		res.SecretError = strp(err.Error())
		kr = nil
	}
	lookup(res, kr, req.Images, req.Raw)
	execs1, errs1 := pluginCounters()
	info.Execs, info.Errors = execs1-execs0, errs1-errs0
	info.Log = klogBuf.take()
	return res, nil
}

func cmdProvider(args []string) {
	fs := flag.NewFlagSet("provider", flag.ExitOnError)
	hostRoot := fs.String("host-root", "", "the node's root file system (its docker config files)")
	config := fs.String("provider-config", "", "the kubelet's --image-credential-provider-config (file or directory)")
	binDir := fs.String("provider-bin-dir", "", "the kubelet's --image-credential-provider-bin-dir")
	rootDir := fs.String("root-dir", defaultRootDir, "the kubelet's --root-dir")
	home := fs.String("home", defaultHome, "the kubelet process's $HOME (\"\" = unset)")
	cwd := fs.String("cwd", defaultCwd, "the kubelet process's working directory")
	raw := fs.Bool("raw", false, "look the arguments up verbatim instead of the kubelet's normalized repository")
	_ = fs.Parse(args)
	if *hostRoot == "" || *config == "" || *binDir == "" {
		die(2, "provider: --host-root, --provider-config and --provider-bin-dir are required")
	}
	if fs.NArg() == 0 {
		die(2, "provider: at least one IMAGE is required")
	}
	ensureHome(*home)
	out, err := handleProvider(request{Op: "provider", HostRoot: *hostRoot, ProviderConfig: *config, ProviderBinDir: *binDir, RootDir: *rootDir, Home: home, Cwd: *cwd, Images: fs.Args(), Raw: *raw})
	if err != nil {
		die(1, "%v", err)
	}
	if err := emit(os.Stdout, out); err != nil {
		die(1, "%v", err)
	}
}
