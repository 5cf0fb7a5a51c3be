package main

// Typical objects shaped like real storage: zero values included (generated
// protobuf marshallers write every non-pointer field), server-owned fields set
// as the API server and controllers set them, and strings that YAML 1.1
// resolvers would type. Encoded with the serializers the API server stores
// with: protobuf for built-ins, JSON and CBOR for a custom resource.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/cbor"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/scheme"
)

// Strings that a YAML 1.1 or 1.2 resolver reads as something else when plain.
var trickyStrings = map[string]string{
	"yes": "yes", "no": "No", "on": "ON", "off": "off", "y": "y", "n": "N",
	"true": "True", "null": "~", "underscore": "1_000", "hex": "0x1F",
	"octal": "012", "sexagesimal": "1:20", "float": "1e3", "dot": ".5",
	"inf": ".inf", "nan": ".NaN", "merge": "<<", "empty": "",
	"colon": "a: b", "hash": "# not a comment", "dash": "- item",
	"leading-space": " x", "date": "2001-12-14", "bool-ish": "Off",
}

func objMeta(name, ns string, uid string) metav1.ObjectMeta {
	ts := metav1.NewTime(time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC))
	return metav1.ObjectMeta{
		Name:              name,
		Namespace:         ns,
		UID:               types.UID(uid),
		CreationTimestamp: ts,
		Labels:            map[string]string{"app": "web", "enabled": "yes", "tier": "on"},
		ManagedFields: []metav1.ManagedFieldsEntry{{
			Manager: "kubectl-client-side-apply", Operation: metav1.ManagedFieldsOperationUpdate,
			APIVersion: "v1", Time: &ts, FieldsType: "FieldsV1",
			FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:metadata":{"f:labels":{".":{},"f:app":{}}}}`)},
		}},
	}
}

func container() corev1.Container {
	return corev1.Container{
		Name:                     "app",
		Image:                    "registry.example/app:1.0",
		Ports:                    []corev1.ContainerPort{{ContainerPort: 8080, Protocol: corev1.ProtocolTCP}},
		Env:                      []corev1.EnvVar{{Name: "FEATURE", Value: "off"}, {Name: "COUNT", Value: "1_000"}},
		Resources:                corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}},
		TerminationMessagePath:   "/dev/termination-log",
		TerminationMessagePolicy: corev1.TerminationMessageReadFile,
		ImagePullPolicy:          corev1.PullIfNotPresent,
	}
}

func podSpec() corev1.PodSpec {
	grace := int64(30)
	return corev1.PodSpec{
		Containers:                    []corev1.Container{container()},
		RestartPolicy:                 corev1.RestartPolicyAlways,
		TerminationGracePeriodSeconds: &grace,
		DNSPolicy:                     corev1.DNSClusterFirst,
		SecurityContext:               &corev1.PodSecurityContext{},
		SchedulerName:                 "default-scheduler",
	}
}

func sampleObjects() []struct {
	key string
	obj runtime.Object
} {
	ctrl := true
	owner := []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-5d8f", UID: "0c1e6a1e-0000-4000-8000-000000000001", Controller: &ctrl, BlockOwnerDeletion: &ctrl}}

	pod := &corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}, ObjectMeta: objMeta("web-5d8f-abcde", "default", "0c1e6a1e-0000-4000-8000-000000000002"), Spec: podSpec()}
	pod.GenerateName = "web-5d8f-"
	pod.OwnerReferences = owner
	pod.Spec.NodeName = "node-1"
	pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.244.0.7", QOSClass: corev1.PodQOSBurstable}

	replicas := int32(2)
	dep := &appsv1.Deployment{TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"}, ObjectMeta: objMeta("web", "default", "0c1e6a1e-0000-4000-8000-000000000003")}
	dep.Generation = 3
	dep.Spec = appsv1.DeploymentSpec{
		Replicas: &replicas,
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}}, Spec: podSpec()},
		Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType},
	}
	dep.Status = appsv1.DeploymentStatus{ObservedGeneration: 3, Replicas: 2, ReadyReplicas: 2}

	svc := &corev1.Service{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Service"}, ObjectMeta: objMeta("web", "default", "0c1e6a1e-0000-4000-8000-000000000004")}
	policy := corev1.IPFamilyPolicySingleStack
	svc.Spec = corev1.ServiceSpec{
		Type:                  corev1.ServiceTypeLoadBalancer,
		Ports:                 []corev1.ServicePort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80, TargetPort: intstr.FromInt32(8080), NodePort: 30080}},
		Selector:              map[string]string{"app": "web"},
		ClusterIP:             "10.96.12.34",
		ClusterIPs:            []string{"10.96.12.34"},
		ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal,
		HealthCheckNodePort:   31234,
		SessionAffinity:       corev1.ServiceAffinityNone,
		IPFamilies:            []corev1.IPFamily{corev1.IPv4Protocol},
		IPFamilyPolicy:        &policy,
	}

	cm := &corev1.ConfigMap{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"}, ObjectMeta: objMeta("tricky", "default", "0c1e6a1e-0000-4000-8000-000000000005")}
	cm.Data = map[string]string{}
	for k, v := range trickyStrings {
		cm.Data[k] = v
	}
	cm.Data["<<"] = "merge key"
	cm.Data["y"] = "key y"
	cm.Annotations = map[string]string{"note": "yes", "count": "0x1F"}

	sec := &corev1.Secret{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"}, ObjectMeta: objMeta("creds", "default", "0c1e6a1e-0000-4000-8000-000000000006")}
	sec.Type = corev1.SecretTypeOpaque
	sec.Data = map[string][]byte{"password": []byte("hunter2"), "token": []byte("yes")}

	job := &batchv1.Job{TypeMeta: metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"}, ObjectMeta: objMeta("batch-1", "default", "0c1e6a1e-0000-4000-8000-000000000007")}
	uidLabels := map[string]string{"batch.kubernetes.io/controller-uid": "0c1e6a1e-0000-4000-8000-000000000007", "controller-uid": "0c1e6a1e-0000-4000-8000-000000000007", "batch.kubernetes.io/job-name": "batch-1", "job-name": "batch-1"}
	job.Spec = batchv1.JobSpec{
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"batch.kubernetes.io/controller-uid": "0c1e6a1e-0000-4000-8000-000000000007"}},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: uidLabels}, Spec: podSpec()},
	}
	job.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyNever

	pvc := &corev1.PersistentVolumeClaim{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "PersistentVolumeClaim"}, ObjectMeta: objMeta("data", "default", "0c1e6a1e-0000-4000-8000-000000000008")}
	pvc.Spec = corev1.PersistentVolumeClaimSpec{
		AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
		Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		VolumeName:  "pvc-0c1e6a1e",
	}
	pvc.Status.Phase = corev1.ClaimBound

	sa := &corev1.ServiceAccount{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"}, ObjectMeta: objMeta("builder", "default", "0c1e6a1e-0000-4000-8000-000000000009")}
	sa.Secrets = []corev1.ObjectReference{{Name: "builder-token-x7k2p"}}

	ns := &corev1.Namespace{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"}, ObjectMeta: objMeta("prod", "", "0c1e6a1e-0000-4000-8000-00000000000a")}
	ns.Spec.Finalizers = []corev1.FinalizerName{corev1.FinalizerKubernetes}
	ns.Status.Phase = corev1.NamespaceActive

	return []struct {
		key string
		obj runtime.Object
	}{
		{"/registry/pods/default/web-5d8f-abcde", pod},
		{"/registry/deployments/default/web", dep},
		{"/registry/services/specs/default/web", svc},
		{"/registry/configmaps/default/tricky", cm},
		{"/registry/secrets/default/creds", sec},
		{"/registry/jobs/default/batch-1", job},
		{"/registry/persistentvolumeclaims/default/data", pvc},
		{"/registry/serviceaccounts/default/builder", sa},
		{"/registry/namespaces/prod", ns},
	}
}

func widget(name string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]interface{}{
		"apiVersion": "example.com/v1",
		"kind":       "Widget",
		"metadata": map[string]interface{}{
			"name": name, "namespace": "default", "uid": "0c1e6a1e-0000-4000-8000-0000000000" + name[len(name)-2:],
			"creationTimestamp": "2026-11-01T12:00:00Z", "generation": int64(1),
			"labels": map[string]interface{}{"enabled": "yes", "size": "1_000"},
		},
		"spec": map[string]interface{}{
			"replicas": int64(0), "enabled": false, "mode": "off", "ratio": 0.5,
			"tags": []interface{}{"on", "n", "<<"}, "empty": map[string]interface{}{}, "none": nil,
		},
	}}
	return u
}

func samples(w io.Writer) error {
	enc := json.NewEncoder(w)
	emit := func(key string, value []byte) error {
		return enc.Encode(map[string]string{"key": key, "value": base64.StdEncoding.EncodeToString(value)})
	}
	pb := protobuf.NewSerializer(scheme.Scheme, scheme.Scheme)
	for _, s := range sampleObjects() {
		var buf bytes.Buffer
		if err := pb.Encode(s.obj, &buf); err != nil {
			return err
		}
		if err := emit(s.key, buf.Bytes()); err != nil {
			return err
		}
	}
	js := kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, scheme.Scheme, scheme.Scheme, kjson.SerializerOptions{})
	var buf bytes.Buffer
	if err := js.Encode(widget("w-01"), &buf); err != nil {
		return err
	}
	if err := emit("/registry/example.com/widgets/default/w-01", bytes.TrimRight(buf.Bytes(), "\n")); err != nil {
		return err
	}
	cb := cbor.NewSerializer(unstructuredCreater{}, scheme.Scheme)
	buf.Reset()
	if err := cb.Encode(widget("w-02"), &buf); err != nil {
		return err
	}
	return emit("/registry/example.com/widgets/default/w-02", buf.Bytes())
}
