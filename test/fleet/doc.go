// Package fleet holds the fleet politeness benchmark: many real agents
// (agent core plus authapi client, one shared HTTP transport) against the
// test server through an outage, measuring how evenly they come back. It
// has no code of its own outside its tests.
//
// It is test infrastructure: shipped code must not import it.
package fleet
