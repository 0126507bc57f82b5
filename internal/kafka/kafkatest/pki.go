// Package kafkatest secures the in-process Kafka-protocol brokers (kfake)
// of tests as production brokers are secured: it makes a certificate
// authority, a broker certificate and a client certificate for a test, so
// that a broker can listen with TLS and authenticate clients by
// certificate.
package kafkatest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// ServerName is the only name the broker certificate carries: clients
// dialling 127.0.0.1 must be told to expect it (Kafka.Security.TLS.ServerName).
const ServerName = "broker.kafka.test"

// PKI is a test's certificate authority and the certificates it signed,
// written as PEM files into a temporary directory.
type PKI struct {
	// CAFile holds the authority's certificate.
	CAFile string
	// ClientCertFile and ClientKeyFile are a client certificate (CN
	// "tracktrace") and its key.
	ClientCertFile, ClientKeyFile string

	ca     *x509.Certificate
	server tls.Certificate
}

// NewPKI makes a certificate authority and a broker and a client
// certificate signed by it, valid for an hour.
func NewPKI(t testing.TB) *PKI {
	t.Helper()
	dir := t.TempDir()
	caKey := newKey(t)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "kafkatest CA"},
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	p := &PKI{CAFile: filepath.Join(dir, "ca.pem"), ClientCertFile: filepath.Join(dir, "client.pem"),
		ClientKeyFile: filepath.Join(dir, "client-key.pem"), ca: ca}
	writePEM(t, p.CAFile, "CERTIFICATE", caDER)

	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage, dns []string) ([]byte, *ecdsa.PrivateKey) {
		key := newKey(t)
		der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: cn},
			DNSNames:     dns,
			NotBefore:    time.Now().Add(-time.Minute),
			NotAfter:     time.Now().Add(time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		}, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, key
	}
	serverDER, serverKey := leaf(2, ServerName, x509.ExtKeyUsageServerAuth, []string{ServerName})
	p.server = tls.Certificate{Certificate: [][]byte{serverDER}, PrivateKey: serverKey}
	clientDER, clientKey := leaf(3, "tracktrace", x509.ExtKeyUsageClientAuth, nil)
	writePEM(t, p.ClientCertFile, "CERTIFICATE", clientDER)
	keyDER, err := x509.MarshalPKCS8PrivateKey(clientKey)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, p.ClientKeyFile, "PRIVATE KEY", keyDER)
	return p
}

// ServerTLS is the broker's TLS configuration (for kfake.TLS): its
// certificate, and clientAuth deciding whether clients must present a
// certificate signed by the authority (tls.RequireAndVerifyClientCert).
func (p *PKI) ServerTLS(clientAuth tls.ClientAuthType) *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(p.ca)
	return &tls.Config{Certificates: []tls.Certificate{p.server}, ClientCAs: pool, ClientAuth: clientAuth,
		MinVersion: tls.VersionTLS12}
}

// ClientTLS is a client's TLS configuration trusting the authority and
// presenting the client certificate, for test clients built without
// tracktrace's settings.
func (p *PKI) ClientTLS(t testing.TB) *tls.Config {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(p.ClientCertFile, p.ClientKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(p.ca)
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, ServerName: ServerName,
		MinVersion: tls.VersionTLS12}
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
