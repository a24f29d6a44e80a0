package yocto

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"unicode"
)

// goMod is one module version the build may need.
type goMod struct {
	Path    string
	Version string
	// ModOnly means only the module's go.mod is needed (go.sum lists only
	// its /go.mod hash): the gomod fetcher gets it with mod=1.
	ModOnly bool
}

// readGoSum lists the module versions in a go.sum file, sorted.
func readGoSum(r io.Reader) ([]goMod, error) {
	zips := map[[2]string]bool{}
	mods := map[[2]string]bool{}
	sc := bufio.NewScanner(r)
	n := 0
	for sc.Scan() {
		n++
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) != 3 || !strings.HasPrefix(f[2], "h1:") {
			return nil, fmt.Errorf("go.sum:%d: want \"module version h1:hash\", got %q", n, sc.Text())
		}
		if v, ok := strings.CutSuffix(f[1], "/go.mod"); ok {
			mods[[2]string{f[0], v}] = true
		} else {
			zips[[2]string{f[0], f[1]}] = true
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	var out []goMod
	for k := range zips {
		out = append(out, goMod{Path: k[0], Version: k[1]})
	}
	for k := range mods {
		if !zips[k] {
			out = append(out, goMod{Path: k[0], Version: k[1], ModOnly: true})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Path != out[j].Path {
			return out[i].Path < out[j].Path
		}
		return out[i].Version < out[j].Version
	})
	return out, nil
}

// escapeModPath applies the module cache's case encoding ("!" + lower
// case for each upper-case letter).
func escapeModPath(p string) string {
	var b strings.Builder
	for _, r := range p {
		if unicode.IsUpper(r) {
			b.WriteByte('!')
			b.WriteRune(unicode.ToLower(r))
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// cacheFile returns the path of a module's .zip (or .mod) in the module
// download cache, downloading it through the Go module proxy when absent.
func cacheFile(modCache string, m goMod) (string, error) {
	ext := ".zip"
	if m.ModOnly {
		ext = ".mod"
	}
	p := filepath.Join(modCache, "cache", "download", escapeModPath(m.Path), "@v", m.Version+ext)
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	out, err := exec.Command("go", "mod", "download", "-json", m.Path+"@"+m.Version).Output()
	if err != nil {
		return "", fmt.Errorf("go mod download %s@%s: %w", m.Path, m.Version, err)
	}
	var info struct{ Zip, GoMod string }
	if err := json.Unmarshal(out, &info); err != nil {
		return "", fmt.Errorf("go mod download %s@%s: %w", m.Path, m.Version, err)
	}
	if m.ModOnly {
		return info.GoMod, nil
	}
	return info.Zip, nil
}

func sha256File(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// goModsInc renders the recipe include that pins every module in go.sum
// for bitbake's gomod fetcher: the .zip's sha256 for modules whose code
// may be built, the .mod file's for modules needed only for their go.mod.
func goModsInc(mods []goMod, modCache string) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("# Go modules of mender-agent, pinned for bitbake's gomod fetcher.\n")
	b.WriteString("# Generated from go.sum by `make yocto-mods`; do not edit.\n")
	b.WriteString("SRC_URI += \"\\\n")
	for _, m := range mods {
		p, err := cacheFile(modCache, m)
		if err != nil {
			return nil, err
		}
		sum, err := sha256File(p)
		if err != nil {
			return nil, err
		}
		mod := ""
		if m.ModOnly {
			mod = ";mod=1"
		}
		fmt.Fprintf(&b, "    gomod://%s;version=%s%s;sha256sum=%s \\\n", m.Path, m.Version, mod, sum)
	}
	b.WriteString("\"\n")
	return b.Bytes(), nil
}
