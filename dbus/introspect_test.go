package dbus

import (
	"encoding/xml"
	"os"
	"sort"
	"testing"

	"github.com/godbus/dbus/v5/introspect"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// normalize drops what the golden comparison ignores (annotations, and the
// nil-versus-empty difference of unmarshalled slices).
func normalize(i introspect.Interface) introspect.Interface {
	out := introspect.Interface{Name: i.Name}
	for _, m := range i.Methods {
		out.Methods = append(out.Methods, introspect.Method{Name: m.Name, Args: m.Args})
	}
	for _, s := range i.Signals {
		out.Signals = append(out.Signals, introspect.Signal{Name: s.Name, Args: s.Args})
	}
	out.Properties = append(out.Properties, i.Properties...)
	return out
}

func parseInterface(t *testing.T, data []byte, name string) introspect.Interface {
	t.Helper()
	var n introspect.Node
	require.NoError(t, xml.Unmarshal(data, &n))
	for _, i := range n.Interfaces {
		if i.Name == name {
			return normalize(i)
		}
	}
	t.Fatalf("interface %s not found", name)
	return introspect.Interface{}
}

func TestIntrospectionMatchesUpstream(t *testing.T) {
	golden, err := os.ReadFile("../dist/io.mender.Authentication1.xml")
	require.NoError(t, err)
	want := parseInterface(t, golden, Interface)
	got := parseInterface(t, []byte(introspectXML), Interface)
	assert.Equal(t, want, got)

	// The upstream description itself: the drop-in contract.
	require.Len(t, want.Methods, 2)
	assert.Equal(t, introspect.Method{Name: "GetJwtToken", Args: []introspect.Arg{
		{Name: "token", Type: "s", Direction: "out"}, {Name: "server_url", Type: "s", Direction: "out"},
	}}, want.Methods[0])
	assert.Equal(t, introspect.Method{Name: "FetchJwtToken", Args: []introspect.Arg{
		{Name: "success", Type: "b", Direction: "out"},
	}}, want.Methods[1])
	assert.Equal(t, []introspect.Signal{{Name: "JwtTokenStateChange", Args: []introspect.Arg{
		{Name: "token", Type: "s"}, {Name: "server_url", Type: "s"},
	}}}, want.Signals)

	intro := parseInterface(t, []byte(introspectXML), introspectableInterface)
	assert.Equal(t, []introspect.Method{{Name: "Introspect", Args: []introspect.Arg{{Name: "xml_data", Type: "s", Direction: "out"}}}}, intro.Methods)
}

// TestExportedMethodsMatchIntrospection guards against exporting more than
// the interface: godbus exports every exported method of authObject.
func TestExportedMethodsMatchIntrospection(t *testing.T) {
	described := parseInterface(t, []byte(introspectXML), Interface)
	exported := introspect.Methods(authObject{})
	var gotNames, wantNames []string
	sigs := map[string][]string{}
	for _, m := range exported {
		gotNames = append(gotNames, m.Name)
		for _, a := range m.Args {
			sigs[m.Name] = append(sigs[m.Name], a.Direction+":"+a.Type)
		}
	}
	for _, m := range described.Methods {
		wantNames = append(wantNames, m.Name)
		var want []string
		for _, a := range m.Args {
			want = append(want, a.Direction+":"+a.Type)
		}
		assert.Equal(t, want, sigs[m.Name], "signature of %s", m.Name)
	}
	sort.Strings(gotNames)
	sort.Strings(wantNames)
	assert.Equal(t, wantNames, gotNames)
}

func TestParentNodesLeadToObject(t *testing.T) {
	path := "/"
	for range 3 {
		child, ok := parentNodes[godbusPath(path)]
		require.True(t, ok, "no introspection node at %s", path)
		var n introspect.Node
		require.NoError(t, xml.Unmarshal([]byte(parentXML(child)), &n))
		require.Len(t, n.Children, 1)
		assert.Equal(t, child, n.Children[0].Name)
		if path == "/" {
			path = ""
		}
		path += "/" + child
	}
	assert.Equal(t, string(ObjectPath), path)
}
