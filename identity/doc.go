// Package identity runs the device identity script and turns its output into
// the id_data the Mender server expects (mender-protocol.md §2): key=value
// lines, split on the first '=', repeated keys collected into arrays, keys
// sorted. It owns the script's execution: a time limit that kills the
// script's whole process group, a bound on its output, and errors that quote
// the script path, its exit status and the first lines of its stderr.
//
// The package also ships the default script, mender-device-identity, which
// prints the MAC address of the device's first Ethernet-type interface.
//
// It imports the standard library and logrus only, and must not import any
// other package of this module.
package identity
