SUMMARY = "Mender device identity and trust daemon (drop-in for mender-auth)"
DESCRIPTION = "mender-agent owns the device key (file or TPM 2.0), authenticates \
to the Mender server, renews the token before it expires and serves it over \
D-Bus (io.mender.Authentication1) and a loopback forwarder."
HOMEPAGE = "https://github.com/mender-agent/mender-agent"
SECTION = "console/network"
LICENSE = "Apache-2.0"
LIC_FILES_CHKSUM = "file://src/${GO_IMPORT}/LICENSE;md5=3b83ef96387f14655fc854ddc3c6bd57"

GO_IMPORT = "github.com/mender-agent/mender-agent"
SRC_URI = "git://${GO_IMPORT}.git;protocol=https;branch=main;destsuffix=${GO_SRCURI_DESTSUFFIX}"
SRCREV = "b0163df43d148467a1c9594531e63c5ccaec4652"
PV = "0.1+git"

# Every Go module the build needs, pinned with its checksum, so the build
# runs offline after do_fetch. Kept in sync with go.sum by the layer test.
require ${BPN}-go-mods.inc

inherit go-mod systemd

GO_INSTALL = "${GO_IMPORT}/cmd/mender-agent"
GO_LINKSHARED = ""
GOBUILDFLAGS:append = " -trimpath"
CGO_ENABLED = "0"
MENDER_AGENT_VERSION ?= "${PV}"
GO_EXTRA_LDFLAGS:append = " -s -w -X main.version=${MENDER_AGENT_VERSION} -X main.buildTime=${@time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(int(d.getVar('SOURCE_DATE_EPOCH') or 0)))}"
INSANE_SKIP:${PN} += "ldflags textrel"

# Configuration written to /etc/mender/mender.conf. A mender.conf in
# SRC_URI (from a bbappend) is merged under these settings.
MENDER_SERVER_URL ?= "https://docker.mender.io"
MENDER_TENANT_TOKEN ?= ""
MENDER_AGENT_KEY_TYPE ?= ""
MENDER_RETRY_POLL_INTERVAL_SECONDS ?= "300"
MENDER_UPDATE_POLL_INTERVAL_SECONDS ?= "1800"
MENDER_INVENTORY_POLL_INTERVAL_SECONDS ?= "28800"
MENDER_AGENT_DATA_DIR ?= "/var/lib/mender"

PACKAGECONFIG ??= ""
# tpm: keep the device key in the TPM 2.0 (/dev/tpmrm0). The agent talks to
# the kernel's resource manager directly: no abrmd or TSS libraries needed.
PACKAGECONFIG[tpm] = ",,,"

SRC_URI += "${@'file://server.crt' if d.getVar('MENDER_SERVER_CERTIFICATE') == '1' else ''}"
MENDER_SERVER_CERTIFICATE ?= "0"

DIST_DIR = "${S}/src/${GO_IMPORT}/dist"

python do_mender_agent_config() {
    import json, os
    conf = {}
    user = os.path.join(d.getVar('UNPACKDIR'), 'mender.conf')
    if os.path.exists(user):
        with open(user) as f:
            conf = json.load(f)
    def setkey(key, value):
        if key in conf and conf[key] != value:
            bb.warn("mender.conf from SRC_URI sets %s; the recipe variable overrides it" % key)
        conf[key] = value
    setkey('ServerURL', d.getVar('MENDER_SERVER_URL'))
    if d.getVar('MENDER_TENANT_TOKEN'):
        setkey('TenantToken', d.getVar('MENDER_TENANT_TOKEN'))
    for key, var in (('RetryPollIntervalSeconds', 'MENDER_RETRY_POLL_INTERVAL_SECONDS'),
                     ('UpdatePollIntervalSeconds', 'MENDER_UPDATE_POLL_INTERVAL_SECONDS'),
                     ('InventoryPollIntervalSeconds', 'MENDER_INVENTORY_POLL_INTERVAL_SECONDS')):
        setkey(key, int(d.getVar(var)))
    if d.getVar('MENDER_SERVER_CERTIFICATE') == '1':
        setkey('ServerCertificate', '/etc/mender/server.crt')
    security = conf.setdefault('Security', {})
    if d.getVar('MENDER_AGENT_KEY_TYPE'):
        security['AuthKeyType'] = d.getVar('MENDER_AGENT_KEY_TYPE')
    if bb.utils.contains('PACKAGECONFIG', 'tpm', True, False, d):
        security['AuthKeyBackend'] = 'tpm'
        security['TPMDevice'] = '/dev/tpmrm0'
    with open(os.path.join(d.getVar('B'), 'mender.conf'), 'w') as f:
        json.dump(conf, f, indent=2, sort_keys=True)
        f.write('\n')
}
do_mender_agent_config[vardeps] = "MENDER_SERVER_URL MENDER_TENANT_TOKEN MENDER_AGENT_KEY_TYPE \
    MENDER_RETRY_POLL_INTERVAL_SECONDS MENDER_UPDATE_POLL_INTERVAL_SECONDS \
    MENDER_INVENTORY_POLL_INTERVAL_SECONDS MENDER_SERVER_CERTIFICATE PACKAGECONFIG"
addtask mender_agent_config after do_compile before do_install

do_install:append() {
    install -d ${D}${systemd_system_unitdir} ${D}${datadir}/dbus-1/system.d \
        ${D}${datadir}/dbus-1/system-services ${D}${datadir}/mender/identity \
        ${D}${sysconfdir}/mender
    install -m 0644 ${DIST_DIR}/mender-authd.service ${D}${systemd_system_unitdir}/mender-authd.service
    install -m 0644 ${DIST_DIR}/io.mender.AuthenticationManager.conf ${D}${datadir}/dbus-1/system.d/
    install -m 0644 ${DIST_DIR}/io.mender.AuthenticationManager.service ${D}${datadir}/dbus-1/system-services/
    install -m 0755 ${S}/src/${GO_IMPORT}/identity/mender-device-identity ${D}${datadir}/mender/identity/
    install -m 0600 ${B}/mender.conf ${D}${sysconfdir}/mender/mender.conf
    if [ "${MENDER_SERVER_CERTIFICATE}" = "1" ]; then
        install -m 0644 ${UNPACKDIR}/server.crt ${D}${sysconfdir}/mender/server.crt
    fi
    if ${@bb.utils.contains('PACKAGECONFIG', 'tpm', 'true', 'false', d)}; then
        install -d ${D}${systemd_system_unitdir}/mender-authd.service.d
        install -m 0644 ${DIST_DIR}/mender-authd-tpm.conf ${D}${systemd_system_unitdir}/mender-authd.service.d/tpm.conf
    fi
    if [ "${MENDER_AGENT_DATA_DIR}" != "/var/lib/mender" ]; then
        install -d ${D}${localstatedir}/lib
        ln -sf ${MENDER_AGENT_DATA_DIR} ${D}${localstatedir}/lib/mender
    fi
}

SYSTEMD_SERVICE:${PN} = "mender-authd.service"
SYSTEMD_AUTO_ENABLE ?= "enable"

FILES:${PN} += "${systemd_system_unitdir} ${datadir}/dbus-1 ${datadir}/mender \
    ${sysconfdir}/mender ${localstatedir}/lib/mender"
CONFFILES:${PN} = "${sysconfdir}/mender/mender.conf"

RDEPENDS:${PN} += "dbus"
RRECOMMENDS:${PN} += "ca-certificates"
# One owner of io.mender.AuthenticationManager per image.
RCONFLICTS:${PN} = "mender-auth"
RREPLACES:${PN} = "mender-auth"
RPROVIDES:${PN} = "mender-auth-provider"
