package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// errHelpShown ends a command after --help printed its usage.
var errHelpShown = errors.New("help shown")

// command is one subcommand of mender-agent.
type command struct {
	name    string
	summary string
	usage   string // argument synopsis after the command name
	// flags registers the command's own options.
	flags func(o *options)
	// args says the command takes positional arguments (described by
	// usage); commands without them refuse any.
	args bool
	// run executes the command with its positional arguments.
	run func(ctx context.Context, g *globals, args []string, std stdio) error
}

// commands lists every subcommand in the order --help shows them.
func commands() []*command {
	return []*command{
		daemonCommand(),
		bootstrapCommand(),
		tokenCommand(),
		showKeyCommand(),
		provisionCommand(),
		checkCommand(),
		verifyArtifactCommand(),
		versionCommand(),
	}
}

// option is one flag with an optional one-letter alias.
type option struct {
	short, long string
	arg         string // placeholder for the value; "" for booleans
	help        string
}

// options wraps a FlagSet so every option has a long name, an optional
// short alias and one help line.
type options struct {
	fs   *flag.FlagSet
	list []option
}

func newOptions(name string) *options {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return &options{fs: fs}
}

func (o *options) add(opt option, register func(name string)) {
	register(opt.long)
	if opt.short != "" {
		register(opt.short)
	}
	o.list = append(o.list, opt)
}

func (o *options) String(p *string, short, long, arg, def, help string) {
	*p = def
	o.add(option{short, long, arg, help}, func(n string) { o.fs.StringVar(p, n, def, help) })
}

func (o *options) Bool(p *bool, short, long, help string) {
	o.add(option{short, long, "", help}, func(n string) { o.fs.BoolVar(p, n, *p, help) })
}

func (o *options) Func(short, long, arg, help string, fn func(string) error) {
	o.add(option{short, long, arg, help}, func(n string) { o.fs.Func(n, help, fn) })
}

func (o *options) write(w io.Writer) {
	for _, opt := range o.list {
		names := "--" + opt.long
		if opt.short != "" {
			names = "-" + opt.short + ", " + names
		}
		if opt.arg != "" {
			names += " " + opt.arg
		}
		fmt.Fprintf(w, "  %-32s %s\n", names, opt.help)
	}
}

// parse parses args, mapping flag errors to usage errors and -h/--help to
// printing usage.
func (o *options) parse(args []string, usage func()) error {
	err := o.fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		usage()
		return errHelpShown
	}
	if err != nil {
		return usagef("%v", err)
	}
	return nil
}

func dispatch(ctx context.Context, args []string, std stdio) error {
	g := &globals{env: os.Getenv}
	top := newOptions("mender-agent")
	g.register(top)
	var showVersion bool
	top.Bool(&showVersion, "v", "version", "print the version and exit")
	cmds := commands()
	usage := func() { topUsage(std.out, top, cmds) }
	if err := top.parse(args, usage); err != nil {
		return err
	}
	if showVersion {
		return printVersion(std.out)
	}
	rest := top.fs.Args()
	if len(rest) == 0 {
		topUsage(std.err, top, cmds)
		return usagef("no command given")
	}
	name := rest[0]
	if name == "help" {
		if len(rest) > 1 {
			name, rest = rest[1], []string{rest[1], "--help"}
		} else {
			usage()
			return nil
		}
	}
	for _, c := range cmds {
		if c.name != name {
			continue
		}
		o := newOptions(c.name)
		if c.flags != nil {
			c.flags(o)
		}
		// Global options are accepted after the command too.
		g.register(o)
		cu := func() { commandUsage(std.out, c, o) }
		if err := o.parse(rest[1:], cu); err != nil {
			return err
		}
		if !c.args && o.fs.NArg() > 0 {
			return usagef("%s takes no arguments, got %q", c.name, o.fs.Args())
		}
		return c.run(ctx, g, o.fs.Args(), std)
	}
	return usagef("unknown command %q", name)
}

func topUsage(w io.Writer, top *options, cmds []*command) {
	fmt.Fprintf(w, "mender-agent %s: device identity and trust for the Mender server\n\n", version)
	fmt.Fprintln(w, "Usage: mender-agent [global options] COMMAND [options] [arguments]")
	fmt.Fprintln(w, "\nCommands:")
	for _, c := range cmds {
		fmt.Fprintf(w, "  %-16s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nGlobal options (also accepted after the command):")
	top.write(w)
	fmt.Fprintln(w, "\nEnvironment: MENDER_CONF_DIR (default /etc/mender), MENDER_DATASTORE_DIR")
	fmt.Fprintln(w, "(default /var/lib/mender), MENDER_DATA_DIR (identity script base, default")
	fmt.Fprintln(w, "/usr/share/mender), DBUS_SYSTEM_BUS_ADDRESS.")
	fmt.Fprintln(w, "\nExit status: 0 success, 1 runtime failure, 2 usage error.")
	fmt.Fprintln(w, "Run 'mender-agent COMMAND --help' for a command's options.")
}

func commandUsage(w io.Writer, c *command, o *options) {
	fmt.Fprintf(w, "Usage: mender-agent %s [options] %s\n\n%s.\n\nOptions:\n", c.name, c.usage, upperFirst(c.summary))
	o.write(w)
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// sortedKeys returns m's keys in order (for stable output).
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// passphraseOption registers --passphrase-file for commands that load the
// device key.
func passphraseOption(o *options, p *string) {
	o.String(p, "", "passphrase-file", "FILE", "", "read the device key passphrase from FILE ('-' for standard input)")
}

// bootstrapOptions are the key options daemon and bootstrap share with
// mender-auth: -F/--forcebootstrap and --passphrase-file.
type bootstrapOptions struct {
	force    bool
	passFile string
}

func (b *bootstrapOptions) register(o *options, forceHelp string) {
	o.Bool(&b.force, "F", "forcebootstrap", forceHelp)
	passphraseOption(o, &b.passFile)
}

// prepare loads the configuration and the passphrase and, with -F, makes a
// new device key. The caller closes the environment.
func (b *bootstrapOptions) prepare(ctx context.Context, g *globals, std stdio) (*environment, []byte, error) {
	env, pass, err := g.loadWithPassphrase(b.passFile, std)
	if err != nil {
		return nil, nil, err
	}
	if b.force {
		if err := env.rotateKey(ctx, pass); err != nil {
			env.close()
			return nil, nil, err
		}
	}
	return env, pass, nil
}

// loadWithPassphrase loads the configuration and reads the passphrase given
// with --passphrase-file, if any. The caller closes the environment.
func (g *globals) loadWithPassphrase(passFile string, std stdio) (*environment, []byte, error) {
	env, err := g.load(std.err)
	if err != nil {
		return nil, nil, err
	}
	pass, err := readPassphrase(passFile, std)
	if err != nil {
		env.close()
		return nil, nil, err
	}
	return env, pass, nil
}
