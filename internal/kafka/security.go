package kafka

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/aws"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// SASL mechanisms of SASL.Mechanism.
const (
	MechanismPlain       = "PLAIN"
	MechanismScramSHA256 = "SCRAM-SHA-256"
	MechanismScramSHA512 = "SCRAM-SHA-512"
	MechanismAWSMSKIAM   = "AWS_MSK_IAM"
)

// Security is how the clients encrypt and authenticate their connections
// (Kafka.Security). The zero value connects in plaintext without
// authentication.
type Security struct {
	TLS  *TLS  // nil: plaintext
	SASL *SASL // nil: no authentication
}

// TLS configures TLS to the brokers (Kafka.Security.TLS).
type TLS struct {
	// CAFile is a PEM file of the authorities that sign the brokers'
	// certificates; "" trusts the system's roots.
	CAFile string
	// CertFile and KeyFile are the PEM client certificate and key, for
	// mutual TLS; both or neither. They are read at every handshake, so a
	// rotated certificate (cert-manager, a re-mounted Secret) is used by the
	// next connection without a restart.
	CertFile, KeyFile string
	// ServerName is the name the brokers' certificates must carry; "" checks
	// each broker against the host it is dialled by.
	ServerName string
}

// SASL configures SASL authentication (Kafka.Security.SASL).
type SASL struct {
	// Mechanism is MechanismPlain, MechanismScramSHA256,
	// MechanismScramSHA512 or MechanismAWSMSKIAM.
	Mechanism string
	// Username and Password are PLAIN's and SCRAM's credentials.
	Username, Password string
	// AWSCredentials supplies AWS_MSK_IAM's credentials. Nil uses the AWS
	// SDK's default credential chain: environment keys, web identity
	// (EKS IRSA), EKS Pod Identity and ECS task roles (the container
	// credentials endpoint), shared profiles, EC2 instance roles.
	AWSCredentials awssdk.CredentialsProvider
}

// String describes s for logs and errors: "plaintext", "TLS", "mutual
// TLS", with the SASL mechanism and user when set ("TLS, SASL SCRAM-SHA-512
// as tracktrace"); never a password.
func (s Security) String() string {
	var parts []string
	switch {
	case s.TLS == nil:
		parts = append(parts, "plaintext")
	case s.TLS.CertFile != "":
		parts = append(parts, "mutual TLS")
	default:
		parts = append(parts, "TLS")
	}
	if s.SASL != nil {
		sasl := "SASL " + strings.ToUpper(s.SASL.Mechanism)
		if s.SASL.Username != "" {
			sasl += " as " + s.SASL.Username
		}
		parts = append(parts, sasl)
	}
	return strings.Join(parts, ", ")
}

// opts returns the client options that apply s: the TLS dialer and the
// SASL mechanism. It fails rather than connect with less than s asks for.
func (s Security) opts() ([]kgo.Opt, error) {
	var opts []kgo.Opt
	if s.TLS != nil {
		tc, err := s.TLS.config()
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	if s.SASL != nil {
		m, err := s.SASL.mechanism()
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.SASL(m))
	}
	return opts, nil
}

// config builds the TLS configuration; kgo clones it per dial and fills in
// the broker's host as ServerName when that is empty.
func (t *TLS) config() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("kafka: TLS CA file: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("kafka: TLS CA file %s holds no PEM certificate", t.CAFile)
		}
	}
	switch {
	case (t.CertFile == "") != (t.KeyFile == ""):
		return nil, errors.New("kafka: TLS client certificate and key go together: set both CertFile and KeyFile, or neither")
	case t.CertFile != "":
		if _, err := t.clientCertificate(); err != nil {
			return nil, err
		}
		tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return t.clientCertificate() }
	}
	return tc, nil
}

func (t *TLS) clientCertificate() (*tls.Certificate, error) {
	c, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("kafka: TLS client certificate %s, key %s: %w", t.CertFile, t.KeyFile, err)
	}
	return &c, nil
}

// mechanism builds the SASL mechanism.
func (s *SASL) mechanism() (sasl.Mechanism, error) {
	switch strings.ToUpper(s.Mechanism) {
	case MechanismPlain:
		return plain.Auth{User: s.Username, Pass: s.Password}.AsMechanism(), nil
	case MechanismScramSHA256:
		return scram.Auth{User: s.Username, Pass: s.Password}.AsSha256Mechanism(), nil
	case MechanismScramSHA512:
		return scram.Auth{User: s.Username, Pass: s.Password}.AsSha512Mechanism(), nil
	case MechanismAWSMSKIAM:
		creds := s.AWSCredentials
		if creds == nil {
			// Loading resolves where credentials will come from, reading
			// local files at most (hence no caller's context); it fetches
			// none: each authentication asks, and the SDK's cache refreshes
			// them before they expire.
			cfg, err := awsconfig.LoadDefaultConfig(context.Background())
			if err != nil {
				return nil, fmt.Errorf("kafka: AWS_MSK_IAM: AWS credentials: %w", err)
			}
			creds = cfg.Credentials
		}
		return aws.ManagedStreamingIAM(func(ctx context.Context) (aws.Auth, error) {
			c, err := creds.Retrieve(ctx)
			if err != nil {
				return aws.Auth{}, fmt.Errorf("kafka: AWS_MSK_IAM: AWS credentials: %w", err)
			}
			return aws.Auth{AccessKey: c.AccessKeyID, SecretKey: c.SecretAccessKey, SessionToken: c.SessionToken}, nil
		}), nil
	}
	return nil, fmt.Errorf("kafka: unknown SASL mechanism %q (want %s, %s, %s or %s)", s.Mechanism,
		MechanismPlain, MechanismScramSHA256, MechanismScramSHA512, MechanismAWSMSKIAM)
}
