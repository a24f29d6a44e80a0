// Package yocto owns the checks of the meta-mender-agent Yocto layer that
// run without bitbake: a parser for the subset of the bitbake language the
// layer uses, the generator of the layer's Go module pins
// (mender-agent-go-mods.inc), and tests that check the layer against the
// repository (licence, dist/ files, go.sum, D-Bus policy, systemd unit,
// configuration loader).
//
// The layer itself lives in meta-mender-agent/ beside this file. Nothing
// shipped imports this package; it imports the standard library and the
// config package (to load the configuration the recipe generates).
package yocto
