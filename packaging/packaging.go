// Package packaging builds sterad's Debian package with nfpm
// (github.com/goreleaser/nfpm/v2): the binary, its man pages, the
// hardened systemd unit, the udev rule for the handheld, the example
// configuration as a conffile and the maintainer scripts that create the
// sterad user. docs/install.md describes what the package does on a
// machine; `make package` runs packaging/cmd/mkdeb.
package packaging

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/goreleaser/nfpm/v2"
	"github.com/goreleaser/nfpm/v2/deb"
	"github.com/goreleaser/nfpm/v2/files"
)

// Where the package puts things.
const (
	Name        = "sterad"
	BinaryPath  = "/usr/bin/sterad"
	UnitPath    = "/usr/lib/systemd/system/sterad.service"
	UdevPath    = "/usr/lib/udev/rules.d/60-sterad.rules"
	ModulesPath = "/usr/lib/modules-load.d/sterad.conf"
	ConfigPath  = "/etc/sterad/sterad.yaml"
	DataDir     = "/var/lib/sterad"
	ManDir      = "/usr/share/man/man1"
	DocDir      = "/usr/share/doc/sterad"
	// OverridesPath holds the lintian tags the package accepts, each with
	// its reason (packaging/debian/lintian-overrides).
	OverridesPath = "/usr/share/lintian/overrides/sterad"
)

// Maintainer is the Maintainer field of the package.
const Maintainer = "sterad maintainers <maintainers@sterad.example>"

// Options are one build of the package.
type Options struct {
	// Root is the repository's root directory (packaging/ and docs/ are
	// read from it).
	Root string
	// Binary is the sterad binary to ship. It is also run, as
	// `BINARY man --dir DIR`, for the man pages.
	Binary string
	// Version is sterad's version as `git describe` prints it (v1.2.0,
	// v1.2.0-3-gabc1234, abc1234-dirty); DebianVersion maps it.
	Version string
	// Arch is the Go architecture of Binary (default runtime.GOARCH).
	Arch string
	// Date is the build date: the changelog's, the man pages' and every
	// file's modification time, so that a build is reproducible (default:
	// SOURCE_DATE_EPOCH, else now).
	Date time.Time
	// OutDir receives the .deb.
	OutDir string
}

// Build builds the package and returns the path of the .deb.
func Build(ctx context.Context, o Options) (string, error) {
	if o.Root == "" || o.Binary == "" || o.OutDir == "" {
		return "", errors.New("packaging: Root, Binary and OutDir are required")
	}
	if o.Arch == "" {
		o.Arch = runtime.GOARCH
	}
	if o.Date.IsZero() {
		o.Date = SourceDate()
	}
	o.Date = o.Date.UTC().Truncate(time.Second)
	version, err := DebianVersion(o.Version, o.Date)
	if err != nil {
		return "", err
	}
	work, err := os.MkdirTemp("", "sterad-package-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(work)

	gen, err := generate(ctx, o, version, work)
	if err != nil {
		return "", err
	}
	info := packageInfo(o, version, gen)
	info = nfpm.WithDefaults(info)
	if err := nfpm.Validate(info); err != nil {
		return "", fmt.Errorf("packaging: %w", err)
	}
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return "", err
	}
	pkg := deb.Default
	out := filepath.Join(o.OutDir, pkg.ConventionalFileName(info))
	f, err := os.Create(out)
	if err != nil {
		return "", err
	}
	if err := pkg.Package(info, f); err != nil {
		f.Close()
		os.Remove(out)
		return "", fmt.Errorf("packaging: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	return out, nil
}

// generated are the files Build makes before packaging: the man pages and
// the compressed documents, each a source path in the work directory.
type generated struct {
	manPages  []string // .1.gz
	changelog string   // changelog.Debian.gz
	install   string   // install.md.gz
}

// generate writes the man pages (from the binary: cobra's own tree),
// the Debian changelog and the compressed install guide into work.
func generate(ctx context.Context, o Options, version, work string) (generated, error) {
	var g generated
	raw := filepath.Join(work, "man-raw")
	cmd := exec.CommandContext(ctx, o.Binary, "man", "--dir", raw, "--date", o.Date.Format(time.RFC3339))
	cmd.Env = append(os.Environ(), "STERAD_CONFIG=")
	if out, err := cmd.CombinedOutput(); err != nil {
		return g, fmt.Errorf("packaging: %s man: %v\n%s", o.Binary, err, out)
	}
	pages, err := filepath.Glob(filepath.Join(raw, "*.1"))
	if err != nil || len(pages) == 0 {
		return g, fmt.Errorf("packaging: %s man wrote no pages in %s", o.Binary, raw)
	}
	slices.Sort(pages)
	for _, p := range pages {
		dst := filepath.Join(work, "man", filepath.Base(p)+".gz")
		if err := gzipFile(p, dst); err != nil {
			return g, err
		}
		g.manPages = append(g.manPages, dst)
	}
	g.changelog = filepath.Join(work, "changelog.Debian.gz")
	if err := gzipBytes(Changelog(version, o.Date), g.changelog); err != nil {
		return g, err
	}
	g.install = filepath.Join(work, "install.md.gz")
	if err := gzipFile(filepath.Join(o.Root, "docs", "install.md"), g.install); err != nil {
		return g, err
	}
	return g, nil
}

// packageInfo is the package's nfpm description.
func packageInfo(o Options, version string, g generated) *nfpm.Info {
	src := func(p string) string { return filepath.Join(o.Root, "packaging", p) }
	file := func(source, dest string, mode os.FileMode) *files.Content {
		return &files.Content{Source: source, Destination: dest, FileInfo: &files.ContentFileInfo{Mode: mode, MTime: o.Date}}
	}
	contents := files.Contents{
		file(o.Binary, BinaryPath, 0o755),
		file(src("sterad.service"), UnitPath, 0o644),
		file(src("60-sterad.rules"), UdevPath, 0o644),
		file(src("modules-load.conf"), ModulesPath, 0o644),
		file(src("debian/copyright"), DocDir+"/copyright", 0o644),
		file(src("debian/lintian-overrides"), OverridesPath, 0o644),
		file(g.changelog, DocDir+"/changelog.Debian.gz", 0o644),
		file(g.install, DocDir+"/install.md.gz", 0o644),
		// The conffile: dpkg keeps the administrator's edits on upgrade.
		{Source: src("sterad.yaml"), Destination: ConfigPath, Type: files.TypeConfig,
			FileInfo: &files.ContentFileInfo{Mode: 0o644, MTime: o.Date}},
		{Destination: "/etc/sterad", Type: files.TypeDir, FileInfo: &files.ContentFileInfo{Mode: 0o755, MTime: o.Date}},
		// Root's here; the postinst's dpkg-statoverride makes it the
		// sterad user's, and systemd's StateDirectory= keeps it so.
		{Destination: DataDir, Type: files.TypeDir, FileInfo: &files.ContentFileInfo{Mode: 0o700, MTime: o.Date}},
	}
	for _, p := range g.manPages {
		contents = append(contents, file(p, ManDir+"/"+filepath.Base(p), 0o644))
	}
	return &nfpm.Info{
		Name:          Name,
		Arch:          o.Arch,
		Platform:      "linux",
		Version:       version,
		VersionSchema: "none",
		Section:       "net",
		Priority:      "optional",
		Maintainer:    Maintainer,
		Homepage:      "https://github.com/sterad/sterad",
		License:       "proprietary",
		Description: "payment terminal gateway for hotels\n" +
			"sterad drives a hotel's card terminals (serial and USB), authorizes\n" +
			"with the acquirer over ISO 8583, keeps every transaction in a local\n" +
			"journal, stands in while the acquirer is unreachable and closes the\n" +
			"batch every night. It serves an HTTP API to the property management\n" +
			"system and a web console to the front desk.",
		MTime: o.Date,
		Overridables: nfpm.Overridables{
			Depends:  []string{"libc6 (>= 2.34)", "libusb-1.0-0 (>= 2:1.0.16)", "adduser (>= 3.130)"},
			Contents: contents,
			Scripts: nfpm.Scripts{
				PostInstall: src("debian/postinst"),
				PreRemove:   src("debian/prerm"),
				PostRemove:  src("debian/postrm"),
			},
			Deb: nfpm.Deb{Compression: "xz"},
		},
	}
}

// SourceDate is SOURCE_DATE_EPOCH (reproducible builds), else now.
func SourceDate() time.Time {
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		var sec int64
		if _, err := fmt.Sscan(s, &sec); err == nil {
			return time.Unix(sec, 0).UTC()
		}
	}
	return time.Now().UTC()
}

var (
	tagged   = regexp.MustCompile(`^v?([0-9][0-9A-Za-z.]*)(?:-([0-9]+)-g([0-9a-f]+))?(-dirty)?$`)
	untagged = regexp.MustCompile(`^([0-9a-f]{7,40})(-dirty)?$`)
)

// DebianVersion maps sterad's version (`git describe --tags --always
// --dirty`) to a Debian version with a Debian revision of 1: v1.2.0 →
// 1.2.0-1; v1.2.0-3-gabc1234 (3 commits after the tag) →
// 1.2.0+git3.abc1234-1; abc1234 (no tag yet) → 0~gitYYYYMMDD.abc1234-1,
// dated with the build; a dirty tree adds +dirty.
func DebianVersion(v string, date time.Time) (string, error) {
	v = strings.TrimSpace(v)
	var up string
	switch m, u := tagged.FindStringSubmatch(v), untagged.FindStringSubmatch(v); {
	case u != nil: // a bare hash, before tagged.match reads it as a version
		up = "0~git" + date.UTC().Format("20060102") + "." + u[1] + strings.ReplaceAll(u[2], "-", "+")
	case m != nil:
		up = m[1]
		if m[2] != "" {
			up += "+git" + m[2] + "." + m[3]
		}
		up += strings.ReplaceAll(m[4], "-", "+")
	default:
		return "", fmt.Errorf("packaging: version %q is neither a tag (v1.2.0) nor a commit (git describe)", v)
	}
	return up + "-1", nil
}

// Changelog is the package's Debian changelog: one entry, for this build.
func Changelog(version string, date time.Time) []byte {
	return fmt.Appendf(nil, "%s (%s) unstable; urgency=medium\n\n  * Built from sterad %s.\n\n -- %s  %s\n",
		Name, version, version, Maintainer, date.UTC().Format("Mon, 02 Jan 2006 15:04:05 -0700"))
}

// gzipFile compresses src into dst, at the best compression and without
// a name or time in the header (lintian wants both).
func gzipFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return gzipBytes(b, dst)
}

func gzipBytes(b []byte, dst string) error {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return err
	}
	if _, err := io.Copy(zw, bytes.NewReader(b)); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return os.WriteFile(dst, buf.Bytes(), 0o644)
}
