// Command kubelet-oracle answers "which credentials would the kubelet try for this image" with
// the kubelet's own code: k8s.io/kubernetes/pkg/credentialprovider and
// pkg/credentialprovider/secrets of the release this module requires (see testenv/README.md
// for the exact command lines and JSON contract).
//
// Node requests chroot(2) into the host root so that the kubelet's real search order
// (SetPreferredDockercfgPath(--root-dir), then cwd, $HOME/.docker, /.docker, then .dockercfg
// in the same places) applies unchanged, symlinks included. After each request the process
// leaves the chroot again through a descriptor of the original root opened at start, so one
// process can answer thousands of requests (batch mode). Needs root (CAP_SYS_CHROOT).
package main

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"

	v1 "k8s.io/api/core/v1"
	"k8s.io/kubernetes/pkg/credentialprovider"
	"k8s.io/kubernetes/pkg/credentialprovider/secrets"
	"k8s.io/kubernetes/pkg/util/parsers"
)

const (
	defaultRootDir = "/var/lib/kubelet"
	defaultHome    = "/root"
	defaultCwd     = "/"
	reexecEnv      = "NRC_KUBELET_ORACLE_REEXEC"
	// Set in a batch worker that serves "provider" requests itself (one registration per process).
	providerWorkerEnv = "NRC_KUBELET_ORACLE_PROVIDER_WORKER"
)

// secretSpec is one imagePullSecret: its bytes come from a file or from the request itself.
type secretSpec struct {
	File       string  `json:"file,omitempty"`
	Data       *string `json:"data,omitempty"`
	DataBase64 *string `json:"dataBase64,omitempty"`
	Type       string  `json:"type,omitempty"`
	Key        string  `json:"key,omitempty"`
}

type request struct {
	ID       json.RawMessage `json:"id,omitempty"`
	Op       string          `json:"op"`
	HostRoot string          `json:"hostRoot,omitempty"`
	RootDir  string          `json:"rootDir,omitempty"`
	Home     *string         `json:"home,omitempty"`
	Cwd      string          `json:"cwd,omitempty"`
	Images   []string        `json:"images"`
	Raw      bool            `json:"raw,omitempty"`
	Secrets  []secretSpec    `json:"secrets,omitempty"`
	// op "provider": the kubelet's --image-credential-provider-config and --image-credential-provider-bin-dir
	ProviderConfig string `json:"providerConfig,omitempty"`
	ProviderBinDir string `json:"providerBinDir,omitempty"`
	// op "secret" may also give one secret at top level
	secretSpec
}

type cred struct {
	Username      string `json:"username"`
	Password      string `json:"password"`
	Email         string `json:"email"`
	Auth          string `json:"auth"`
	ServerAddress string `json:"serverAddress"`
}

type searched struct {
	File   string  `json:"file"`
	Status string  `json:"status"` // "missing" | "invalid" | "used"
	Error  *string `json:"error"`
}

type result struct {
	ID          json.RawMessage   `json:"id,omitempty"`
	File        *string           `json:"file"`
	Error       *string           `json:"error"`
	SecretError *string           `json:"secretError,omitempty"`
	Searched    []searched        `json:"searched,omitempty"`
	Images      map[string][]cred `json:"images"`
	Repos       map[string]string `json:"repos"`
	ImageErrors map[string]string `json:"imageErrors"`
	Provider    *providerInfo     `json:"provider,omitempty"`
}

type requestError struct {
	ID           json.RawMessage `json:"id,omitempty"`
	RequestError string          `json:"requestError"`
}

// fatal is an inconsistency between the oracle's own replication and the kubelet's code:
// never answered as data.
type fatal struct{ msg string }

func (f fatal) Error() string { return f.msg }

func strp(s string) *string { return &s }

var (
	realRoot *os.File
	startCwd string
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	realRoot, err = os.Open("/")
	if err != nil {
		die(2, "open /: %v", err)
	}
	startCwd, err = os.Getwd()
	if err != nil {
		startCwd = "/"
	}
	switch os.Args[1] {
	case "node":
		cmdNode(os.Args[2:])
	case "secret":
		cmdSecret(os.Args[2:])
	case "provider":
		cmdProvider(os.Args[2:])
	case "batch":
		cmdBatch()
	case "-h", "--help", "help":
		usage()
	default:
		die(2, "unknown command %q", os.Args[1])
	}
}

func usage() {
	fmt.Fprint(os.Stderr, `usage:
  kubelet-oracle node --host-root DIR [--root-dir /var/lib/kubelet] [--home /root] [--cwd /]
                      [--secret FILE]... [--raw] IMAGE...
  kubelet-oracle secret --file FILE [--type kubernetes.io/dockerconfigjson|kubernetes.io/dockercfg]
                      [--key KEY] [--raw] IMAGE...
  kubelet-oracle provider --host-root DIR --provider-config FILE|DIR --provider-bin-dir DIR
                      [--root-dir /var/lib/kubelet] [--home /root] [--cwd /] [--raw] IMAGE...
  kubelet-oracle batch   (JSON lines on stdin, one JSON line per request on stdout)
`)
	os.Exit(2)
}

func die(code int, format string, args ...any) {
	fmt.Fprintf(os.Stderr, "kubelet-oracle: "+format+"\n", args...)
	os.Exit(code)
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func emit(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

func cmdNode(args []string) {
	fs := flag.NewFlagSet("node", flag.ExitOnError)
	hostRoot := fs.String("host-root", "", "the node's root file system")
	rootDir := fs.String("root-dir", defaultRootDir, "the kubelet's --root-dir")
	home := fs.String("home", defaultHome, "the kubelet process's $HOME (\"\" = unset)")
	cwd := fs.String("cwd", defaultCwd, "the kubelet process's working directory")
	raw := fs.Bool("raw", false, "look the arguments up verbatim instead of the kubelet's normalized repository")
	var secretFiles multiFlag
	fs.Var(&secretFiles, "secret", "a kubernetes.io/dockerconfigjson pull secret's .dockerconfigjson (repeatable)")
	_ = fs.Parse(args)
	if *hostRoot == "" {
		die(2, "node: --host-root is required")
	}
	if fs.NArg() == 0 {
		die(2, "node: at least one IMAGE is required")
	}
	ensureHome(*home)
	req := request{Op: "node", HostRoot: *hostRoot, RootDir: *rootDir, Home: home, Cwd: *cwd, Images: fs.Args(), Raw: *raw}
	for _, f := range secretFiles {
		req.Secrets = append(req.Secrets, secretSpec{File: f})
	}
	out, err := handle(req)
	if err != nil {
		var f fatal
		if errors.As(err, &f) {
			die(3, "%v", err)
		}
		die(1, "%v", err)
	}
	if err := emit(os.Stdout, out); err != nil {
		die(1, "%v", err)
	}
}

func cmdSecret(args []string) {
	fs := flag.NewFlagSet("secret", flag.ExitOnError)
	file := fs.String("file", "", "the secret's data (.dockerconfigjson or .dockercfg bytes)")
	typ := fs.String("type", string(v1.SecretTypeDockerConfigJson), "the secret's type")
	key := fs.String("key", "", "the data key (default: .dockerconfigjson, or .dockercfg for kubernetes.io/dockercfg)")
	raw := fs.Bool("raw", false, "look the arguments up verbatim instead of the kubelet's normalized repository")
	_ = fs.Parse(args)
	if *file == "" {
		die(2, "secret: --file is required")
	}
	if fs.NArg() == 0 {
		die(2, "secret: at least one IMAGE is required")
	}
	req := request{Op: "secret", Images: fs.Args(), Raw: *raw, secretSpec: secretSpec{File: *file, Type: *typ, Key: *key}}
	out, err := handle(req)
	if err != nil {
		die(1, "%v", err)
	}
	if err := emit(os.Stdout, out); err != nil {
		die(1, "%v", err)
	}
}

// homeMatches tells whether this process started with the $HOME a request wants: the
// credentialprovider package reads $HOME once, when the process starts.
func homeMatches(home string) bool {
	cur, set := os.LookupEnv("HOME")
	if home == "" {
		return !set || cur == ""
	}
	return cur == home
}

func envWithHome(home string) []string {
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "HOME=") {
			env = append(env, e)
		}
	}
	if home != "" {
		env = append(env, "HOME="+home)
	}
	return env
}

// ensureHome re-executes this program with HOME=home when it differs.
func ensureHome(home string) {
	if homeMatches(home) {
		return
	}
	if os.Getenv(reexecEnv) != "" {
		die(3, "HOME still differs after re-exec")
	}
	exe, err := os.Executable()
	if err != nil {
		die(3, "os.Executable: %v", err)
	}
	env := append(envWithHome(home), reexecEnv+"=1")
	err = syscall.Exec(exe, os.Args, env)
	die(3, "re-exec: %v", err)
}

func handle(req request) (*result, error) {
	switch req.Op {
	case "node":
		return handleNode(req)
	case "secret":
		return handleSecret(req)
	case "provider":
		return handleProvider(req)
	default:
		return nil, fmt.Errorf("unknown op %q (want \"node\", \"secret\" or \"provider\")", req.Op)
	}
}

func secretBytes(s secretSpec) ([]byte, error) {
	switch {
	case s.Data != nil:
		return []byte(*s.Data), nil
	case s.DataBase64 != nil:
		return base64.StdEncoding.DecodeString(*s.DataBase64)
	case s.File != "":
		return os.ReadFile(s.File)
	}
	return nil, errors.New("a secret needs \"file\", \"data\" or \"dataBase64\"")
}

func makeSecrets(specs []secretSpec) ([]v1.Secret, error) {
	var out []v1.Secret
	for i, s := range specs {
		b, err := secretBytes(s)
		if err != nil {
			return nil, err
		}
		typ := s.Type
		if typ == "" {
			typ = string(v1.SecretTypeDockerConfigJson)
		}
		key := s.Key
		if key == "" {
			key = v1.DockerConfigJsonKey
			if typ == string(v1.SecretTypeDockercfg) {
				key = v1.DockerConfigKey
			}
		}
		sec := v1.Secret{Type: v1.SecretType(typ), Data: map[string][]byte{key: b}}
		sec.Name = fmt.Sprintf("secret-%d", i)
		sec.Namespace = "default"
		out = append(out, sec)
	}
	return out, nil
}

func newResult(id json.RawMessage) *result {
	return &result{ID: id, Images: map[string][]cred{}, Repos: map[string]string{}, ImageErrors: map[string]string{}}
}

// lookup does what the kubelet's image manager does: parsers.ParseImageName, then
// keyring.Lookup(repoToPull).
func lookup(res *result, kr credentialprovider.DockerKeyring, images []string, raw bool) {
	for _, img := range images {
		repo := img
		if !raw {
			r, _, _, err := parsers.ParseImageName(img)
			if err != nil {
				res.ImageErrors[img] = err.Error()
				res.Images[img] = []cred{}
				continue
			}
			repo = r
		}
		res.Repos[img] = repo
		res.Images[img] = toCreds(kr, repo)
	}
}

func toCreds(kr credentialprovider.DockerKeyring, repo string) []cred {
	out := []cred{}
	if kr == nil {
		return out
	}
	found, _ := kr.Lookup(repo)
	for _, c := range found {
		out = append(out, cred{Username: c.Username, Password: c.Password, Email: c.Email, Auth: c.Auth, ServerAddress: c.ServerAddress})
	}
	return out
}

func handleSecret(req request) (*result, error) {
	specs := req.Secrets
	if len(specs) == 0 {
		specs = []secretSpec{req.secretSpec}
	}
	secs, err := makeSecrets(specs)
	if err != nil {
		return nil, err
	}
	res := newResult(req.ID)
	kr, err := secrets.MakeDockerKeyring(secs, &credentialprovider.BasicDockerKeyring{})
	if err != nil {
		res.Error = strp(err.Error())
		kr = nil
	}
	lookup(res, kr, req.Images, req.Raw)
	return res, nil
}

// nodeRequest is what a request on a host root resolves to: the kubelet's --root-dir, $HOME and
// cwd (defaults as a kubelet started by systemd), the absolute host root and the pull secrets.
type nodeRequest struct {
	rootDir, home, cwd, hostRoot string
	secrets                      []v1.Secret
}

func resolveNode(req request) (nodeRequest, error) {
	n := nodeRequest{rootDir: req.RootDir, home: defaultHome, cwd: req.Cwd}
	if n.rootDir == "" {
		n.rootDir = defaultRootDir
	}
	if req.Home != nil {
		n.home = *req.Home
	}
	if n.cwd == "" {
		n.cwd = defaultCwd
	}
	if !homeMatches(n.home) {
		return n, fatal{fmt.Sprintf("internal: request wants HOME=%q but this process has HOME=%q", n.home, os.Getenv("HOME"))}
	}
	var err error
	if n.hostRoot, err = filepath.Abs(req.HostRoot); err != nil {
		return n, err
	}
	// Pull secrets are read before entering the host root: their paths are the caller's.
	if len(req.Secrets) > 0 {
		if n.secrets, err = makeSecrets(req.Secrets); err != nil {
			return n, err
		}
	}
	return n, nil
}

func handleNode(req request) (*result, error) {
	if req.HostRoot == "" {
		return nil, errors.New("node: \"hostRoot\" is required")
	}
	n, err := resolveNode(req)
	if err != nil {
		return nil, err
	}
	res := newResult(req.ID)
	err = inHostRoot(n.hostRoot, n.cwd, func() error { return nodeInside(res, req, n.rootDir, n.home, n.secrets) })
	if err != nil {
		return nil, err
	}
	return res, nil
}

func inHostRoot(dir, cwd string, f func() error) (err error) {
	if err := syscall.Chroot(dir); err != nil {
		return fmt.Errorf("chroot %s: %w (kubelet-oracle node needs root)", dir, err)
	}
	savedPWD, hadPWD := os.LookupEnv("PWD")
	defer func() {
		if e := syscall.Fchdir(int(realRoot.Fd())); e != nil {
			die(3, "leaving the host root: fchdir: %v", e)
		}
		if e := syscall.Chroot("."); e != nil {
			die(3, "leaving the host root: chroot: %v", e)
		}
		if e := syscall.Chdir(startCwd); e != nil {
			_ = syscall.Chdir("/")
		}
		if hadPWD {
			os.Setenv("PWD", savedPWD)
		}
	}()
	// A kubelet started by systemd has no $PWD; os.Getwd (filepath.Abs) must use getcwd(2).
	os.Unsetenv("PWD")
	if err := syscall.Chdir(cwd); err != nil {
		return fmt.Errorf("chdir %s inside the host root: %w", cwd, err)
	}
	return f()
}

func errText(err error) *string {
	if err == nil {
		return nil
	}
	return strp(err.Error())
}

// nodeInside runs with / = the host root.
func nodeInside(res *result, req request, rootDir, home string, secs []v1.Secret) error {
	chosen, file, err := searchInside(res, rootDir, home)
	if err != nil {
		return err
	}
	// The kubelet's keyring: MakeDockerKeyring(pullSecrets, Union{NewDefaultDockerKeyring(), plugins}).
	nodeKeyring := credentialprovider.NewDefaultDockerKeyring()
	var kr credentialprovider.DockerKeyring
	kr, err = secrets.MakeDockerKeyring(secs, credentialprovider.UnionDockerKeyring{nodeKeyring})
	if err != nil {
		res.SecretError = strp(err.Error())
		kr = nil
	}
	lookup(res, kr, req.Images, req.Raw)

	// Cross-check the node part against a BasicDockerKeyring built from the file named above.
	if len(secs) == 0 && err == nil {
		basic := &credentialprovider.BasicDockerKeyring{}
		basic.Add(nil, chosen)
		for img, repo := range res.Repos {
			if got := toCreds(basic, repo); !reflect.DeepEqual(got, res.Images[img]) {
				return fatal{fmt.Sprintf("internal: BasicDockerKeyring from %q gives %v for %q, the kubelet's keyring %v", file, got, repo, res.Images[img])}
			}
		}
	}
	return nil
}

// searchInside runs with / = the host root: it names the file the kubelet reads (res.File,
// res.Searched, res.Error) and returns that file's DockerConfig.
func searchInside(res *result, rootDir, home string) (credentialprovider.DockerConfig, string, error) {
	credentialprovider.SetPreferredDockercfgPath(rootDir)

	jsonPaths := credentialprovider.DefaultDockerConfigJSONPaths()
	wantHomeJSON := filepath.Join(home, ".docker")
	if len(jsonPaths) != 4 || jsonPaths[0] != rootDir || jsonPaths[2] != wantHomeJSON {
		return nil, "", fatal{fmt.Sprintf("internal: unexpected kubelet search paths %q (root-dir %q, home %q)", jsonPaths, rootDir, home)}
	}

	// The per-file replication (to name the file that was used) ...
	var (
		chosen credentialprovider.DockerConfig
		file   string
		found  bool
	)
	for _, p := range jsonPaths {
		abs, aerr := filepath.Abs(filepath.Join(p, "config.json"))
		cfg, err := credentialprovider.ReadDockerConfigJSONFile([]string{p})
		if err == nil {
			chosen, file, found = cfg, abs, true
			res.Searched = append(res.Searched, searched{File: abs, Status: "used"})
			break
		}
		if aerr != nil {
			res.Searched = append(res.Searched, searched{File: filepath.Join(p, "config.json"), Status: "invalid", Error: errText(aerr)})
			continue
		}
		_, serr := credentialprovider.ReadSpecificDockerConfigJSONFile(abs)
		res.Searched = append(res.Searched, classify(abs, serr))
	}
	if !found {
		for _, p := range credentialprovider.DefaultDockercfgPaths() {
			abs, aerr := filepath.Abs(filepath.Join(p, ".dockercfg"))
			cfg, err := credentialprovider.ReadDockercfgFile([]string{p})
			if err == nil {
				chosen, file, found = cfg, abs, true
				res.Searched = append(res.Searched, searched{File: abs, Status: "used"})
				break
			}
			if aerr != nil {
				res.Searched = append(res.Searched, searched{File: filepath.Join(p, ".dockercfg"), Status: "invalid", Error: errText(aerr)})
				continue
			}
			b, rerr := os.ReadFile(abs)
			if rerr == nil {
				_, rerr = credentialprovider.ReadDockerConfigFileFromBytes(b)
				if rerr == nil {
					rerr = errors.New("rejected by ReadDockercfgFile")
				}
			}
			res.Searched = append(res.Searched, classify(abs, rerr))
		}
	}

	// ... must agree with the kubelet's own ReadDockerConfigFile.
	realCfg, realErr := credentialprovider.ReadDockerConfigFile()
	if (realErr == nil) != found || !reflect.DeepEqual(realCfg, chosen) {
		return nil, "", fatal{fmt.Sprintf("internal: replicated search (found=%v file=%q) disagrees with ReadDockerConfigFile (err=%v)", found, file, realErr)}
	}
	if found {
		res.File = strp(file)
	} else {
		res.Error = errText(realErr)
	}
	return chosen, file, nil
}

func classify(file string, err error) searched {
	if err == nil {
		return searched{File: file, Status: "used"}
	}
	if os.IsNotExist(err) {
		return searched{File: file, Status: "missing"}
	}
	return searched{File: file, Status: "invalid", Error: errText(err)}
}

// worker is a child kubelet-oracle in batch mode started with another $HOME.
type worker struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
}

func cmdBatch() {
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 256<<20)
	w := bufio.NewWriter(os.Stdout)
	workers := map[string]*worker{}
	defer func() {
		for _, wk := range workers {
			wk.in.Close()
			_ = wk.cmd.Wait()
		}
	}()
	for sc.Scan() {
		line := sc.Bytes()
		if len(strings.TrimSpace(string(line))) == 0 {
			continue
		}
		var req request
		if err := json.Unmarshal(line, &req); err != nil {
			_ = emit(w, requestError{RequestError: "invalid request JSON: " + err.Error()})
			w.Flush()
			continue
		}
		// A provider request goes to the worker of its (HOME, config, bin dir): the plugin
		// registration is global to a process, as in the kubelet.
		providerHere := req.Op == "provider" && os.Getenv(providerWorkerEnv) != ""
		if (req.Op == "node" || req.Op == "provider") && !providerHere {
			home := defaultHome
			if req.Home != nil {
				home = *req.Home
			}
			if !homeMatches(home) || req.Op == "provider" {
				wk, err := getWorker(workers, home, req)
				if err != nil {
					die(3, "batch: starting a worker for HOME=%q: %v", home, err)
				}
				if _, err := wk.in.Write(append(append([]byte{}, line...), '\n')); err != nil {
					die(3, "batch: worker: %v", err)
				}
				resp, err := wk.out.ReadBytes('\n')
				if err != nil {
					die(3, "batch: worker for HOME=%q died: %v", home, err)
				}
				w.Write(resp)
				w.Flush()
				continue
			}
		}
		out, err := handle(req)
		if err != nil {
			var f fatal
			if errors.As(err, &f) {
				w.Flush()
				die(3, "%v", err)
			}
			_ = emit(w, requestError{ID: req.ID, RequestError: err.Error()})
		} else {
			_ = emit(w, out)
		}
		w.Flush()
	}
	if err := sc.Err(); err != nil {
		die(1, "batch: reading stdin: %v", err)
	}
}

func getWorker(workers map[string]*worker, home string, req request) (*worker, error) {
	key := home
	provider := req.Op == "provider"
	if provider {
		key = strings.Join([]string{"provider", home, req.ProviderConfig, req.ProviderBinDir}, "\x00")
	}
	if wk, ok := workers[key]; ok {
		return wk, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, "batch")
	cmd.Env = envWithHome(home)
	if provider {
		cmd.Env = append(cmd.Env, providerWorkerEnv+"=1")
	}
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	wk := &worker{cmd: cmd, in: in, out: bufio.NewReaderSize(out, 1<<20)}
	workers[key] = wk
	return wk, nil
}
