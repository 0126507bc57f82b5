package kafka

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/twmb/franz-go/pkg/sasl"
)

// mskBroker is an MSK broker's host as its bootstrap string names it; the
// mechanism takes the region from it.
const mskBroker = "b-1.tracktrace.abc123.c2.kafka.eu-west-1.amazonaws.com:9098"

// mskChallenge is the first message AWS_MSK_IAM sends a broker: the
// signed request, as JSON.
type mskChallenge struct {
	Action        string `json:"action"`
	Host          string `json:"host"`
	Credential    string `json:"x-amz-credential"`
	SecurityToken string `json:"x-amz-security-token"`
	Signature     string `json:"x-amz-signature"`
}

func authenticate(t *testing.T, m sasl.Mechanism) mskChallenge {
	t.Helper()
	if m.Name() != MechanismAWSMSKIAM {
		t.Fatalf("mechanism %s, want %s", m.Name(), MechanismAWSMSKIAM)
	}
	_, first, err := m.Authenticate(t.Context(), mskBroker)
	if err != nil {
		t.Fatalf("authenticate: %v", err)
	}
	var c mskChallenge
	if err := json.Unmarshal(first, &c); err != nil {
		t.Fatalf("challenge %s: %v", first, err)
	}
	if c.Action != "kafka-cluster:Connect" || c.Host != strings.Split(mskBroker, ":")[0] || c.Signature == "" {
		t.Errorf("challenge %+v: want a signed kafka-cluster:Connect for the broker", c)
	}
	return c
}

// AWS MSK IAM needs AWS to run against; what can be checked here is that
// the settings build the mechanism and that it signs with the credentials
// it is given, for the broker's region.
func TestMSKIAMSignsWithGivenCredentials(t *testing.T) {
	s := &SASL{Mechanism: "aws_msk_iam", AWSCredentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", "session-token")}
	m, err := s.mechanism()
	if err != nil {
		t.Fatal(err)
	}
	c := authenticate(t, m)
	if !strings.HasPrefix(c.Credential, "AKIDEXAMPLE/") || !strings.HasSuffix(c.Credential, "/eu-west-1/kafka-cluster/aws4_request") ||
		c.SecurityToken != "session-token" {
		t.Errorf("challenge %+v: want AKIDEXAMPLE's credentials for eu-west-1 with the session token", c)
	}
}

// Without credentials given, AWS_MSK_IAM takes them from the AWS SDK's
// default chain, as a pod with IRSA has them: a web identity token file and
// a role, exchanged with STS (here a fake STS) for temporary credentials.
func TestMSKIAMWebIdentity(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("projected-service-account-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	sts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil || r.Form.Get("Action") != "AssumeRoleWithWebIdentity" ||
			r.Form.Get("WebIdentityToken") != "projected-service-account-token" ||
			r.Form.Get("RoleArn") != "arn:aws:iam::123456789012:role/tracktrace" {
			t.Errorf("STS request %v", r.Form)
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "text/xml")
		w.Write([]byte(`<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <Credentials>
      <AccessKeyId>ASIAIRSAEXAMPLE</AccessKeyId>
      <SecretAccessKey>irsa-secret</SecretAccessKey>
      <SessionToken>irsa-session-token</SessionToken>
      <Expiration>2099-01-01T00:00:00Z</Expiration>
    </Credentials>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::123456789012:assumed-role/tracktrace/pod</Arn>
      <AssumedRoleId>AROAEXAMPLE:pod</AssumedRoleId>
    </AssumedRoleUser>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata><RequestId>00000000-0000-0000-0000-000000000000</RequestId></ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>`))
	}))
	defer sts.Close()
	for k, v := range map[string]string{
		"AWS_ROLE_ARN":                "arn:aws:iam::123456789012:role/tracktrace",
		"AWS_WEB_IDENTITY_TOKEN_FILE": tokenFile,
		"AWS_ROLE_SESSION_NAME":       "pod",
		"AWS_REGION":                  "eu-west-1",
		"AWS_ENDPOINT_URL_STS":        sts.URL,
		"AWS_ACCESS_KEY_ID":           "",
		"AWS_SECRET_ACCESS_KEY":       "",
		"AWS_SESSION_TOKEN":           "",
		"AWS_PROFILE":                 "",
		"AWS_CONFIG_FILE":             filepath.Join(dir, "none"),
		"AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "none"),
		"AWS_EC2_METADATA_DISABLED":   "true",
	} {
		t.Setenv(k, v)
	}
	m, err := (&SASL{Mechanism: MechanismAWSMSKIAM}).mechanism()
	if err != nil {
		t.Fatal(err)
	}
	c := authenticate(t, m)
	if !strings.HasPrefix(c.Credential, "ASIAIRSAEXAMPLE/") || c.SecurityToken != "irsa-session-token" {
		t.Errorf("challenge %+v: want the credentials STS exchanged for the web identity token", c)
	}
}

// What cannot be honoured is an error, never a connection with less
// security than asked for.
func TestSecurityOptsRefuse(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.txt")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		sec  Security
		msg  string
	}{
		{"unknown mechanism", Security{SASL: &SASL{Mechanism: "GSSAPI"}}, `unknown SASL mechanism "GSSAPI"`},
		{"missing CA file", Security{TLS: &TLS{CAFile: filepath.Join(dir, "missing.pem")}}, "missing.pem"},
		{"CA file without certificates", Security{TLS: &TLS{CAFile: notPEM}}, "holds no PEM certificate"},
		{"certificate without key", Security{TLS: &TLS{CertFile: notPEM}}, "set both CertFile and KeyFile"},
		{"unreadable key pair", Security{TLS: &TLS{CertFile: notPEM, KeyFile: notPEM}}, "client certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewClient(Config{Brokers: []string{"127.0.0.1:9092"}, Security: tt.sec})
			if err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("NewClient = %v, want an error saying %q", err, tt.msg)
			}
		})
	}
}

func TestSecurityString(t *testing.T) {
	tests := []struct {
		sec  Security
		want string
	}{
		{Security{}, "plaintext"},
		{Security{TLS: &TLS{}}, "TLS"},
		{Security{TLS: &TLS{CertFile: "c", KeyFile: "k"}}, "mutual TLS"},
		{Security{TLS: &TLS{}, SASL: &SASL{Mechanism: "scram-sha-512", Username: "tracktrace", Password: "pw"}}, "TLS, SASL SCRAM-SHA-512 as tracktrace"},
		{Security{TLS: &TLS{}, SASL: &SASL{Mechanism: MechanismAWSMSKIAM}}, "TLS, SASL AWS_MSK_IAM"},
	}
	for _, tt := range tests {
		if got := tt.sec.String(); got != tt.want {
			t.Errorf("%+v.String() = %q, want %q", tt.sec, got, tt.want)
		}
	}
}
