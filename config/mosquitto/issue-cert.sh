#!/bin/sh
# Issues the X.509 files of the mqtt-ota broker setup (docs/broker.md) with openssl, EC P-256.
#
#   issue-cert.sh ca     DIR             new CA: DIR/ca.pem (public), DIR/ca.key (keep it offline)
#   issue-cert.sh broker DIR NAME...     DIR/broker/ota-broker.{pem,key}, valid for the host names
#                                        and IP addresses NAME (what devices put in their URL)
#   issue-cert.sh device DIR ID          DIR/devices/ID/{client.crt,client.key,ca.pem}, CN = ID
#   issue-cert.sh sender DIR ACCOUNT     DIR/senders/ACCOUNT/{client.crt,client.key,ca.pem}
#
# Where the files go:
#   DIR/ca.pem                 -> /etc/mosquitto/ca_certificates/ota-ca.pem on the broker
#   DIR/ca.key                 -> nowhere: keep it offline; whoever has it can mint any device
#   DIR/broker/ota-broker.*    -> /etc/mosquitto/certs/ (key readable by the mosquitto user only)
#   DIR/devices/ID/*           -> the device's firmware/certs/ (ca.pem, client.crt, client.key);
#                                 the firmware's OTA_DEVICE_ID must be ID
#   DIR/senders/ACCOUNT/*      -> the sender's broker.tls.ca, broker.tls.cert, broker.tls.key
#
# A device id is one topic level, [A-Za-z0-9._:-]{1,64} (docs/protocol.md §2); the broker uses the
# certificate's Common Name as the username its ACL keys on, so anything else is refused here. A
# sender account has the form NAME@INSTANCE: the "@" keeps it apart from every device id.
# Validity in days: OTA_CA_DAYS (default 3650), OTA_CERT_DAYS (default 825).
set -eu

die() {
  echo "issue-cert.sh: $*" >&2
  exit 2
}

usage() {
  sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

CA_DAYS=${OTA_CA_DAYS:-3650}
CERT_DAYS=${OTA_CERT_DAYS:-825}
EC="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"

# Exits unless $1 is a valid device id.
check_device_id() {
  case "$1" in
  "" | *[!A-Za-z0-9._:-]*) die "device id \"$1\" is not valid: use 1 to 64 of A-Z a-z 0-9 . _ : -" ;;
  esac
  [ "${#1}" -le 64 ] || die "device id \"$1\" is longer than 64 characters"
}

# Exits unless $1 is NAME@INSTANCE built from device-id characters (no ":" for mosquitto_passwd).
check_sender_account() {
  case "$1" in
  *@*@* | @* | *@ | *[!A-Za-z0-9._@-]*) die "sender account \"$1\" is not valid: use NAME@INSTANCE of A-Z a-z 0-9 . _ -" ;;
  *@*) ;;
  *) die "sender account \"$1\" has no \"@\": name it NAME@INSTANCE, e.g. ota-sender@1" ;;
  esac
  [ "${#1}" -le 64 ] || die "sender account \"$1\" is longer than 64 characters"
}

need_ca() {
  [ -f "$1/ca.pem" ] && [ -f "$1/ca.key" ] || die "no CA in \"$1\": run issue-cert.sh ca $1 first"
}

# sign DIR OUT_DIR BASENAME CN EXTENSIONS: a key and a certificate signed by the CA in DIR.
sign() {
  ext=$(mktemp)
  trap 'rm -f "$ext"' EXIT
  printf '%s\n' "$5" >"$ext"
  mkdir -p "$2"
  # shellcheck disable=SC2086 # $EC is a word list on purpose
  openssl req -new $EC -keyout "$2/$3.key" -out "$2/$3.csr" -subj "/CN=$4" 2>/dev/null
  openssl x509 -req -in "$2/$3.csr" -CA "$1/ca.pem" -CAkey "$1/ca.key" -CAserial "$1/ca.srl" \
    -CAcreateserial -days "$CERT_DAYS" -sha256 -extfile "$ext" -out "$2/$3.pem" 2>/dev/null
  rm -f "$2/$3.csr" "$ext"
  chmod 600 "$2/$3.key"
}

# client DIR OUT_DIR CN: a client certificate as the firmware and the sender expect the files.
client() {
  [ ! -e "$2/client.crt" ] || die "\"$2/client.crt\" exists: remove it to issue a new one"
  sign "$1" "$2" client "$3" "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth"
  mv "$2/client.pem" "$2/client.crt"
  cp "$1/ca.pem" "$2/ca.pem"
  echo "$2/client.crt (CN=$3), $2/client.key, $2/ca.pem"
}

[ $# -ge 2 ] || usage
cmd=$1
dir=$2
shift 2
case "$cmd" in
ca)
  [ $# -eq 0 ] || usage
  [ ! -e "$dir/ca.key" ] || die "\"$dir/ca.key\" exists: a new CA would orphan every certificate it signed"
  mkdir -p "$dir"
  # shellcheck disable=SC2086
  openssl req -x509 $EC -keyout "$dir/ca.key" -out "$dir/ca.pem" -days "$CA_DAYS" -sha256 \
    -subj "/CN=mqtt-ota CA" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  chmod 600 "$dir/ca.key"
  echo "$dir/ca.pem, $dir/ca.key (keep ca.key offline)"
  ;;
broker)
  [ $# -ge 1 ] || usage
  need_ca "$dir"
  san=""
  for name in "$@"; do
    case "$name" in
    *[!A-Za-z0-9.:-]*) die "broker name \"$name\" is not a host name or IP address" ;;
    *[!0-9.]* | "") case "$name" in *:*) entry="IP:$name" ;; *) entry="DNS:$name" ;; esac ;;
    *) entry="IP:$name" ;;
    esac
    san="${san:+$san,}$entry"
  done
  sign "$dir" "$dir/broker" ota-broker "$1" "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=$san"
  echo "$dir/broker/ota-broker.pem ($san), $dir/broker/ota-broker.key"
  ;;
device)
  [ $# -eq 1 ] || usage
  check_device_id "$1"
  need_ca "$dir"
  client "$dir" "$dir/devices/$1" "$1"
  ;;
sender)
  [ $# -eq 1 ] || usage
  check_sender_account "$1"
  need_ca "$dir"
  client "$dir" "$dir/senders/$1" "$1"
  ;;
*) usage ;;
esac
