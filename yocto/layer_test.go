package yocto

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mender-agent/mender-agent/config"
	"github.com/mender-agent/mender-agent/test/testenv"
)

var update = flag.Bool("update", false, "regenerate meta-mender-agent's Go module pins from go.sum")

const (
	layerDir   = "meta-mender-agent"
	recipeDir  = "meta-mender-agent/recipes-mender/mender-agent"
	recipePath = recipeDir + "/mender-agent_git.bb"
	modsInc    = recipeDir + "/mender-agent-go-mods.inc"
	collection = "mender-agent"
)

func parseFile(t *testing.T, path string) *recipe {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	r, err := parseBitbake(path, f)
	require.NoError(t, err)
	return r
}

func TestLayerConf(t *testing.T) {
	lc := parseFile(t, filepath.Join(layerDir, "conf", "layer.conf"))
	cols, _ := lc.get("BBFILE_COLLECTIONS")
	assert.Contains(t, strings.Fields(cols), collection)
	pat, ok := lc.get("BBFILE_PATTERN_" + collection)
	assert.True(t, ok)
	assert.Equal(t, "^${LAYERDIR}/", pat)
	prio, _ := lc.get("BBFILE_PRIORITY_" + collection)
	assert.Regexp(t, `^[0-9]+$`, prio)
	deps, _ := lc.get("LAYERDEPENDS_" + collection)
	assert.Equal(t, []string{"core"}, strings.Fields(deps), "the layer depends on openembedded-core only")
	compat, _ := lc.get("LAYERSERIES_COMPAT_" + collection)
	require.NotEmpty(t, compat)
	// gomod:// needs bitbake 2.12+ (walnascar on) and Go 1.25 needs wrynose;
	// claim nothing older.
	for _, old := range []string{"kirkstone", "scarthgap", "styhead", "walnascar"} {
		assert.NotContains(t, strings.Fields(compat), old, "the recipe cannot parse or build on %s", old)
	}

	// Every recipe is matched by a BBFILES glob.
	bbfiles, _ := lc.get("BBFILES")
	var globs []string
	for _, g := range strings.Fields(bbfiles) {
		globs = append(globs, strings.Replace(g, "${LAYERDIR}", layerDir, 1))
	}
	recipes, err := filepath.Glob(filepath.Join(layerDir, "recipes-*", "*", "*.bb*"))
	require.NoError(t, err)
	require.NotEmpty(t, recipes)
	for _, r := range recipes {
		matched := false
		for _, g := range globs {
			if ok, _ := filepath.Match(g, r); ok {
				matched = true
			}
		}
		assert.True(t, matched, "%s is not matched by BBFILES %q", r, bbfiles)
	}
	for _, f := range []string{"README", "SECURITY.md"} {
		data, err := os.ReadFile(filepath.Join(layerDir, f))
		require.NoError(t, err, "yocto-check-layer requires %s", f)
		if f == "README" {
			for _, word := range []string{"maintainer", "patch", "@"} {
				assert.Contains(t, strings.ToLower(string(data)), word, "README must name a maintainer, how to send patches and an e-mail address")
			}
		}
	}
}

func TestRecipe(t *testing.T) {
	r := parseFile(t, recipePath)
	base := filepath.Base(recipePath)
	assert.Regexp(t, `^[a-z0-9-]+_[a-z0-9.+-]+\.bb$`, base, "recipe name must be <pn>_<pv>.bb")

	for _, v := range []string{"SUMMARY", "LICENSE", "LIC_FILES_CHKSUM", "SRC_URI", "SRCREV", "GO_IMPORT"} {
		val, ok := r.get(v)
		assert.True(t, ok && val != "", "%s must be set", v)
	}
	lic, _ := r.get("LICENSE")
	assert.Equal(t, "Apache-2.0", lic)

	// LIC_FILES_CHKSUM matches the repository's licence file.
	chk, _ := r.get("LIC_FILES_CHKSUM")
	m := regexp.MustCompile(`file://src/\$\{GO_IMPORT\}/([^;]+);md5=([0-9a-f]{32})`).FindStringSubmatch(chk)
	require.NotNil(t, m, "LIC_FILES_CHKSUM %q", chk)
	data, err := os.ReadFile(filepath.Join("..", m[1]))
	require.NoError(t, err)
	sum := md5.Sum(data)
	assert.Equal(t, hex.EncodeToString(sum[:]), m[2], "LIC_FILES_CHKSUM md5 must match ../%s", m[1])

	// GO_IMPORT is the module path.
	gomod, err := os.ReadFile("../go.mod")
	require.NoError(t, err)
	goImport, _ := r.get("GO_IMPORT")
	assert.Equal(t, "module "+goImport, strings.SplitN(string(gomod), "\n", 2)[0])
	assert.Contains(t, r.Inherits, "go-mod")
	assert.Contains(t, r.Inherits, "systemd")
	ls, _ := r.get("GO_LINKSHARED")
	assert.Equal(t, "", ls, "static binary")
	assert.Contains(t, r.Requires, "${BPN}-go-mods.inc")

	// SRCREV is a full commit id of this repository.
	srcrev, _ := r.get("SRCREV")
	assert.Regexp(t, `^[0-9a-f]{40}$`, srcrev)
	if out, err := exec.Command("git", "rev-parse", "--is-shallow-repository").Output(); err == nil && strings.TrimSpace(string(out)) == "false" {
		assert.NoError(t, exec.Command("git", "cat-file", "-e", srcrev+"^{commit}").Run(), "SRCREV %s is not a commit of this repository", srcrev)
	}

	// Every literal file:// exists next to the recipe.
	src := strings.Join(append(r.all("SRC_URI", ""), r.all("SRC_URI", ":append")...), " ")
	for _, f := range strings.Fields(src) {
		if !strings.HasPrefix(f, "file://") {
			continue
		}
		name := strings.SplitN(strings.TrimPrefix(f, "file://"), ";", 2)[0]
		assert.FileExists(t, filepath.Join(recipeDir, "files", name))
	}

	// Installed files come from the repository's dist/ (one source of
	// truth with make install) and exist there.
	install := r.Functions["do_install:append"]
	require.NotEmpty(t, install, "do_install:append")
	assert.NotContains(t, install, "${WORKDIR}/", "unpacked files live in ${UNPACKDIR}")
	for _, m := range regexp.MustCompile(`\$\{DIST_DIR\}/([A-Za-z0-9._-]+)`).FindAllStringSubmatch(install, -1) {
		assert.FileExists(t, filepath.Join("..", "dist", m[1]))
	}
	for _, m := range regexp.MustCompile(`\$\{S\}/src/\$\{GO_IMPORT\}/([A-Za-z0-9._/-]+)`).FindAllStringSubmatch(install, -1) {
		assert.FileExists(t, filepath.Join("..", m[1]))
	}
	// Every SYSTEMD_SERVICE is installed and shipped.
	svcs := r.all("SYSTEMD_SERVICE", ":${PN}")
	require.NotEmpty(t, svcs)
	for _, s := range strings.Fields(strings.Join(svcs, " ")) {
		assert.FileExists(t, filepath.Join("..", "dist", s))
		assert.Contains(t, install, "${systemd_system_unitdir}/"+s)
	}
	// No second owner of the bus name, and no TPM stack from outside oe-core.
	assert.Contains(t, strings.Join(r.all("RCONFLICTS", ":${PN}"), " "), "mender-auth")
	assert.Contains(t, strings.Join(r.all("RREPLACES", ":${PN}"), " "), "mender-auth")
	assert.Contains(t, strings.Join(r.all("RRECOMMENDS", ":${PN}"), " "), "ca-certificates")
	tpm, ok := r.flag("PACKAGECONFIG", "tpm")
	require.True(t, ok, "PACKAGECONFIG[tpm]")
	assert.NotContains(t, tpm, "abrmd", "tpm2-abrmd is not in openembedded-core and the agent does not need it")
	// The config task's inputs are in its vardeps.
	deps, _ := r.flag("do_mender_agent_config", "vardeps")
	for _, v := range regexp.MustCompile(`d\.getVar\('([A-Z_]+)'\)`).FindAllStringSubmatch(r.Functions["do_mender_agent_config"], -1) {
		if v[1] == "UNPACKDIR" || v[1] == "B" {
			continue
		}
		assert.Contains(t, strings.Fields(deps), v[1], "do_mender_agent_config reads %s, so it must be in its vardeps", v[1])
	}
}

func TestGoModsIncMatchesGoSum(t *testing.T) {
	f, err := os.Open("../go.sum")
	require.NoError(t, err)
	mods, err := readGoSum(f)
	f.Close()
	require.NoError(t, err)
	require.NotEmpty(t, mods)
	modCache, err := exec.Command("go", "env", "GOMODCACHE").Output()
	require.NoError(t, err)
	want, err := goModsInc(mods, strings.TrimSpace(string(modCache)))
	require.NoError(t, err)
	if *update {
		require.NoError(t, os.WriteFile(modsInc, want, 0o644))
	}
	got, err := os.ReadFile(modsInc)
	require.NoError(t, err)
	assert.Equal(t, string(want), string(got), "%s is out of date with go.sum: run `make yocto-mods`", modsInc)
	// The include parses and lists each module once.
	inc := parseFile(t, modsInc)
	entries := strings.Fields(strings.Join(inc.all("SRC_URI", ""), " "))
	assert.Len(t, entries, len(mods))
}

func TestReadGoSum(t *testing.T) {
	sum := "a.example/x v1.0.0 h1:AAA=\na.example/x v1.0.0/go.mod h1:BBB=\nb.example/Y v0.1.0/go.mod h1:CCC=\n"
	mods, err := readGoSum(strings.NewReader(sum))
	require.NoError(t, err)
	assert.Equal(t, []goMod{{Path: "a.example/x", Version: "v1.0.0"}, {Path: "b.example/Y", Version: "v0.1.0", ModOnly: true}}, mods)
	_, err = readGoSum(strings.NewReader("broken line\n"))
	assert.ErrorContains(t, err, "go.sum:1")
	assert.Equal(t, "github.com/!burnt!sushi/toml", escapeModPath("github.com/BurntSushi/toml"))
}

// TestPolicyLoadsInDbusDaemon loads the shipped policy into a real
// dbus-daemon through <include>, which fails loudly on a bad file
// (<includedir> would skip it silently), and checks that a broken copy is
// refused so the check can fail.
func TestPolicyLoadsInDbusDaemon(t *testing.T) {
	daemon := testenv.LookPath(t, "dbus-daemon")
	policy, err := filepath.Abs("../dist/io.mender.AuthenticationManager.conf")
	require.NoError(t, err)
	broken := filepath.Join(t.TempDir(), "broken.conf")
	data, err := os.ReadFile(policy)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(broken, bytes.Replace(data, []byte(`<allow own=`), []byte(`<allow bogus=`), 1), 0o644))

	tests := []struct {
		name   string
		policy string
		wantOK bool
	}{
		{name: "shipped policy", policy: policy, wantOK: true},
		{name: "broken policy", policy: broken, wantOK: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			conf := filepath.Join(dir, "bus.conf")
			require.NoError(t, os.WriteFile(conf, []byte(`<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=`+filepath.Join(dir, "sock")+`</listen>
  <auth>EXTERNAL</auth>
  <policy context="default"><deny own="*"/></policy>
  <include>`+tt.policy+`</include>
</busconfig>
`), 0o644))
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, daemon, "--config-file="+conf, "--nofork", "--nopidfile", "--print-address=1")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			stdout, err := cmd.StdoutPipe()
			require.NoError(t, err)
			require.NoError(t, cmd.Start())
			buf := make([]byte, 256)
			n, _ := stdout.Read(buf)
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			if tt.wantOK {
				assert.Contains(t, string(buf[:n]), "unix:path=", "dbus-daemon refused the policy: %s", stderr.String())
			} else {
				assert.Equal(t, 0, n, "a broken policy must stop the daemon")
				assert.Contains(t, stderr.String(), "bogus")
			}
		})
	}
}

func TestUnitVerifies(t *testing.T) {
	sa := testenv.LookPath(t, "systemd-analyze")
	for _, unit := range []string{"../dist/mender-authd.service"} {
		out, _ := exec.Command(sa, "verify", "--man=no", "--recursive-errors=no", unit).CombinedOutput()
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if line == "" || strings.Contains(line, "is not executable") || strings.Contains(line, "No such file or directory") && strings.Contains(line, "/usr/bin/mender-agent") {
				continue
			}
			t.Errorf("systemd-analyze verify %s: %s", unit, line)
		}
	}
	unit, err := os.ReadFile("../dist/mender-authd.service")
	require.NoError(t, err)
	for _, want := range []string{"Type=dbus", "BusName=io.mender.AuthenticationManager", "Restart=always", "NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=", "PrivateTmp=yes", "ReadWritePaths="} {
		assert.Contains(t, string(unit), want)
	}
}

// generatedConfig does what the recipe's do_mender_agent_config does with
// the recipe's default variables.
func generatedConfig(t *testing.T, r *recipe, tpm bool) []byte {
	t.Helper()
	get := func(v string) string { s, _ := r.get(v); return s }
	atoi := func(v string) int {
		n, err := strconv.Atoi(get(v))
		require.NoError(t, err, v)
		return n
	}
	conf := map[string]any{
		"ServerURL":                    get("MENDER_SERVER_URL"),
		"RetryPollIntervalSeconds":     atoi("MENDER_RETRY_POLL_INTERVAL_SECONDS"),
		"UpdatePollIntervalSeconds":    atoi("MENDER_UPDATE_POLL_INTERVAL_SECONDS"),
		"InventoryPollIntervalSeconds": atoi("MENDER_INVENTORY_POLL_INTERVAL_SECONDS"),
		"Security":                     map[string]any{},
	}
	if tpm {
		conf["Security"] = map[string]any{"AuthKeyBackend": "tpm", "TPMDevice": "/dev/tpmrm0"}
	}
	out, err := json.MarshalIndent(conf, "", "  ")
	require.NoError(t, err)
	return out
}

func TestGeneratedConfigLoads(t *testing.T) {
	r := parseFile(t, recipePath)
	fn := r.Functions["do_mender_agent_config"]
	for _, key := range []string{"ServerURL", "TenantToken", "RetryPollIntervalSeconds", "UpdatePollIntervalSeconds", "InventoryPollIntervalSeconds", "ServerCertificate", "AuthKeyType", "AuthKeyBackend", "TPMDevice"} {
		assert.Contains(t, fn, "'"+key+"'", "the recipe writes %s", key)
	}
	for _, tpm := range []bool{false, true} {
		log, hook := test.NewNullLogger()
		log.SetLevel(logrus.DebugLevel)
		cfg, err := config.Parse("mender.conf", generatedConfig(t, r, tpm), log)
		require.NoError(t, err)
		for _, e := range hook.AllEntries() {
			assert.Greater(t, e.Level, logrus.WarnLevel, "the generated configuration must not warn: %s", e.Message)
		}
		url, _ := r.get("MENDER_SERVER_URL")
		assert.Equal(t, []string{url}, cfg.ServerURLs())
		if tpm {
			assert.Equal(t, "tpm", cfg.Security.AuthKeyBackend)
		}
	}
}

func TestParseBitbake(t *testing.T) {
	src := `# comment
A = "1"
A ?= "ignored"
B ??= "weak"
C = "x"
C += "y"
C =+ "w"
C .= "z"
C =. "v"
D := "${A}"
export E = "e"
RDEPENDS:${PN} += "dbus \
    ca-certificates"
FILES:${PN}:append = " /x"
do_thing[vardeps] = "A B"
PACKAGECONFIG[tpm] = ",,,"
MULTI = "one
two"
inherit go-mod systemd
require ${BPN}-go-mods.inc
addtask thing after do_compile

do_install:append() {
    install -d ${D}
}

python do_py() {
    import json
}

def helper(d):
    return 1

Q = 'single'
`
	r, err := parseBitbake("t.bb", strings.NewReader(src))
	require.NoError(t, err)
	tests := []struct{ name, want string }{
		{"A", "1"}, {"B", "weak"}, {"C", "vw x yz"}, {"D", "${A}"}, {"E", "e"}, {"MULTI", "one\ntwo"}, {"Q", "single"},
	}
	for _, tt := range tests {
		got, ok := r.get(tt.name)
		assert.True(t, ok, tt.name)
		assert.Equal(t, tt.want, got, tt.name)
	}
	assert.Equal(t, []string{"dbus \n    ca-certificates"}, r.all("RDEPENDS", ":${PN}"))
	assert.Equal(t, []string{" /x"}, r.all("FILES", ":${PN}:append"))
	v, ok := r.flag("do_thing", "vardeps")
	assert.True(t, ok)
	assert.Equal(t, "A B", v)
	assert.Equal(t, []string{"go-mod", "systemd"}, r.Inherits)
	assert.Equal(t, []string{"${BPN}-go-mods.inc"}, r.Requires)
	assert.Contains(t, r.Functions["do_install:append"], "install -d ${D}")
	assert.Contains(t, r.Functions["do_py"], "import json")
	assert.Equal(t, []string{"addtask thing after do_compile"}, r.Tasks)
	assert.Equal(t, "x/${NOPE}/y", expand("${A}/${NOPE}/${B}", map[string]string{"A": "x", "B": "y"}))

	bad := []struct{ name, src, want string }{
		{"unquoted", "A = 1\n", "must be quoted"},
		{"garbage", "this is not bitbake\n", "t.bb:1: cannot parse"},
		{"open function", "do_x() {\n echo\n", "no closing brace"},
		{"open quote", "A = \"x\n", "unterminated"},
		{"open continuation", "A = \"x \\", "line continuation"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseBitbake("t.bb", strings.NewReader(tt.src))
			assert.ErrorContains(t, err, tt.want)
		})
	}
}

func FuzzParseBitbake(f *testing.F) {
	for _, p := range []string{recipePath, filepath.Join(layerDir, "conf", "layer.conf")} {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(string(data))
		}
	}
	f.Add("A = \"x\"\n")
	f.Fuzz(func(t *testing.T, src string) {
		r, err := parseBitbake("fuzz.bb", strings.NewReader(src))
		if err == nil && r == nil {
			t.Fatal("nil recipe without error")
		}
	})
}
