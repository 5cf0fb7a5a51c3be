// Command kms-plugin is the KMS plugin of etcdsnap's tests: a real KMS v2
// (k8s.io/kms's gRPC service) or v1beta1 plugin on a unix socket, whose
// "external KMS" is a list of local AES-256 keys. kube-apiserver wraps its
// data keys with it; etcdsnap asks it to unwrap them. It is not for use
// outside the tests.
//
// Flags: -socket PATH; -api v2|v1; -keys ID=BASE64[,ID=BASE64...] (the first
// wraps, every one unwraps: a rotation lists the new key first); -refuse
// (every Decrypt fails); -log FILE (one line per Decrypt: "decrypt KEYID").
package main

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	v1 "k8s.io/kms/apis/v1beta1"
	"k8s.io/kms/pkg/service"
)

type keys struct {
	order  []string
	aeads  map[string]cipher.AEAD
	refuse bool
	mu     sync.Mutex
	log    *os.File
}

func parseKeys(s string) (*keys, error) {
	k := &keys{aeads: map[string]cipher.AEAD{}}
	for _, item := range strings.Split(s, ",") {
		id, b64, ok := strings.Cut(item, "=")
		if !ok || id == "" {
			return nil, fmt.Errorf("-keys: %q is not ID=BASE64", item)
		}
		raw, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || len(raw) != 32 {
			return nil, fmt.Errorf("-keys: %s: not 32 bytes of base64", id)
		}
		block, err := aes.NewCipher(raw)
		if err != nil {
			return nil, err
		}
		gcm, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		k.order = append(k.order, id)
		k.aeads[id] = gcm
	}
	return k, nil
}

func (k *keys) wrap(plain []byte) (string, []byte, error) {
	id := k.order[0]
	nonce := make([]byte, 12)
	if _, err := rand.Read(nonce); err != nil {
		return "", nil, err
	}
	return id, k.aeads[id].Seal(nonce, nonce, plain, []byte(id)), nil
}

func (k *keys) unwrap(id string, ct []byte) ([]byte, error) {
	k.mu.Lock()
	if k.log != nil {
		fmt.Fprintf(k.log, "decrypt %s\n", id)
	}
	k.mu.Unlock()
	if k.refuse {
		return nil, errors.New("refused: this plugin was started with -refuse")
	}
	aead, ok := k.aeads[id]
	if !ok {
		return nil, fmt.Errorf("key %q is not held by this plugin", id)
	}
	if len(ct) < 12 {
		return nil, errors.New("ciphertext too short")
	}
	return aead.Open(nil, ct[:12], ct[12:], []byte(id))
}

// v2: k8s.io/kms/pkg/service.Service.
type v2 struct{ k *keys }

func (s v2) Encrypt(_ context.Context, _ string, data []byte) (*service.EncryptResponse, error) {
	id, ct, err := s.k.wrap(data)
	if err != nil {
		return nil, err
	}
	return &service.EncryptResponse{Ciphertext: ct, KeyID: id,
		Annotations: map[string][]byte{"key.kms.etcdsnap.test": []byte("local")}}, nil
}

func (s v2) Decrypt(_ context.Context, _ string, req *service.DecryptRequest) ([]byte, error) {
	if string(req.Annotations["key.kms.etcdsnap.test"]) != "local" {
		return nil, errors.New("the annotations written with the data key are missing")
	}
	return s.k.unwrap(req.KeyID, req.Ciphertext)
}

func (s v2) Status(context.Context) (*service.StatusResponse, error) {
	return &service.StatusResponse{Version: "v2", Healthz: "ok", KeyID: s.k.order[0]}, nil
}

// v1beta1: the key ID travels inside the ciphertext ("ID:" + sealed).
type v1s struct {
	v1.UnimplementedKeyManagementServiceServer
	k *keys
}

func (s v1s) Version(context.Context, *v1.VersionRequest) (*v1.VersionResponse, error) {
	return &v1.VersionResponse{Version: "v1beta1", RuntimeName: "etcdsnap-test-kms", RuntimeVersion: "0.1.0"}, nil
}

func (s v1s) Encrypt(_ context.Context, r *v1.EncryptRequest) (*v1.EncryptResponse, error) {
	id, ct, err := s.k.wrap(r.Plain)
	if err != nil {
		return nil, err
	}
	return &v1.EncryptResponse{Cipher: append([]byte(id+":"), ct...)}, nil
}

func (s v1s) Decrypt(_ context.Context, r *v1.DecryptRequest) (*v1.DecryptResponse, error) {
	id, ct, ok := strings.Cut(string(r.Cipher), ":")
	if !ok {
		return nil, errors.New("no key ID in the ciphertext")
	}
	plain, err := s.k.unwrap(id, []byte(ct))
	if err != nil {
		return nil, err
	}
	return &v1.DecryptResponse{Plain: plain}, nil
}

func main() {
	socket := flag.String("socket", "", "unix socket to listen on")
	api := flag.String("api", "v2", "KMS API: v2 or v1")
	keyList := flag.String("keys", "", "ID=BASE64[,ID=BASE64...]; the first wraps")
	refuse := flag.Bool("refuse", false, "fail every Decrypt")
	logFile := flag.String("log", "", "append one line per Decrypt to this file")
	flag.Parse()
	k, err := parseKeys(*keyList)
	if err != nil || *socket == "" {
		log.Fatalf("kms-plugin: -socket and -keys are needed: %v", err)
	}
	k.refuse = *refuse
	if *logFile != "" {
		if k.log, err = os.OpenFile(*logFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600); err != nil {
			log.Fatal(err)
		}
	}
	_ = os.Remove(*socket)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	switch *api {
	case "v2":
		s := service.NewGRPCService(*socket, 10*time.Second, v2{k})
		go func() { <-stop; s.Close() }()
		if err := s.ListenAndServe(); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			log.Fatal(err)
		}
	case "v1":
		ln, err := net.Listen("unix", *socket)
		if err != nil {
			log.Fatal(err)
		}
		gs := grpc.NewServer()
		v1.RegisterKeyManagementServiceServer(gs, v1s{k: k})
		go func() { <-stop; gs.Stop() }()
		if err := gs.Serve(ln); err != nil {
			log.Fatal(err)
		}
	default:
		log.Fatalf("kms-plugin: -api %q is not v2 or v1", *api)
	}
}
