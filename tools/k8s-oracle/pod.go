package main

// pod: the oracle for static pod manifests. It reads a YAML document as
// kubelet's file source reads a static pod (sigs.k8s.io/yaml into
// k8s.io/api/core/v1.Pod), but strictly: an unknown or duplicated field is
// an error. Then it runs the checks that the modules this program already
// depends on provide (apimachinery's object-meta, name, label and port
// validation) plus the structural rules of a Pod spec that kubelet's
// validation applies to every static pod: a container needs a name and an
// image, volume mounts name existing volumes at absolute paths, each volume
// and probe has exactly one source or handler, probe ports are valid, host
// networking ports match. On success it prints the Pod as JSON (from the
// typed object); on failure every problem on stderr and exit status 1.

import (
	"fmt"
	"io"
	"path"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/yaml"
)

func podCheck(r io.Reader, w io.Writer) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	var pod corev1.Pod
	if err := yaml.UnmarshalStrict(raw, &pod); err != nil {
		return fmt.Errorf("strict decoding into v1.Pod: %v", err)
	}
	errs := validatePod(&pod)
	if len(errs) > 0 {
		var b strings.Builder
		for _, e := range errs {
			b.WriteString(e.Error())
			b.WriteString("\n")
		}
		return fmt.Errorf("invalid Pod:\n%s", b.String())
	}
	out, err := yaml.Marshal(&pod)
	if err != nil {
		return err
	}
	js, err := yaml.YAMLToJSON(out)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", js)
	return err
}

func validatePod(pod *corev1.Pod) field.ErrorList {
	var errs field.ErrorList
	if pod.APIVersion != "v1" {
		errs = append(errs, field.Invalid(field.NewPath("apiVersion"), pod.APIVersion, "must be v1"))
	}
	if pod.Kind != "Pod" {
		errs = append(errs, field.Invalid(field.NewPath("kind"), pod.Kind, "must be Pod"))
	}
	meta := field.NewPath("metadata")
	// kubelet defaults a static pod's namespace; a given one must be valid.
	errs = append(errs, apivalidation.ValidateObjectMeta(&pod.ObjectMeta, pod.Namespace != "",
		apivalidation.NameIsDNSSubdomain, meta)...)
	errs = append(errs, metav1validation.ValidateLabels(pod.Labels, meta.Child("labels"))...)

	spec := field.NewPath("spec")
	s := &pod.Spec
	vols := map[string]bool{}
	for i, v := range s.Volumes {
		p := spec.Child("volumes").Index(i)
		for _, m := range validation.IsDNS1123Label(v.Name) {
			errs = append(errs, field.Invalid(p.Child("name"), v.Name, m))
		}
		if vols[v.Name] {
			errs = append(errs, field.Duplicate(p.Child("name"), v.Name))
		}
		vols[v.Name] = true
		n := 0
		if v.HostPath != nil {
			n++
			hp := v.HostPath
			if hp.Path == "" || !path.IsAbs(hp.Path) {
				errs = append(errs, field.Invalid(p.Child("hostPath", "path"), hp.Path, "must be an absolute path"))
			}
			if hp.Type != nil {
				switch *hp.Type {
				case corev1.HostPathUnset, corev1.HostPathDirectoryOrCreate, corev1.HostPathDirectory,
					corev1.HostPathFileOrCreate, corev1.HostPathFile, corev1.HostPathSocket,
					corev1.HostPathCharDev, corev1.HostPathBlockDev:
				default:
					errs = append(errs, field.NotSupported[string](p.Child("hostPath", "type"), *hp.Type, nil))
				}
			}
		}
		if v.EmptyDir != nil {
			n++
		}
		if v.ConfigMap != nil || v.Secret != nil || v.Projected != nil || v.DownwardAPI != nil {
			n++
		}
		if n != 1 {
			errs = append(errs, field.Invalid(p, v.Name, "a volume needs exactly one source (of those this oracle knows: hostPath, emptyDir, configMap, secret, projected, downwardAPI)"))
		}
	}
	if len(s.Containers) == 0 {
		errs = append(errs, field.Required(spec.Child("containers"), "a pod needs a container"))
	}
	names := map[string]bool{}
	for i, c := range s.Containers {
		p := spec.Child("containers").Index(i)
		for _, m := range validation.IsDNS1123Label(c.Name) {
			errs = append(errs, field.Invalid(p.Child("name"), c.Name, m))
		}
		if names[c.Name] {
			errs = append(errs, field.Duplicate(p.Child("name"), c.Name))
		}
		names[c.Name] = true
		if strings.TrimSpace(c.Image) == "" {
			errs = append(errs, field.Required(p.Child("image"), "kubelet refuses a static pod without an image"))
		}
		switch c.ImagePullPolicy {
		case "", corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever:
		default:
			errs = append(errs, field.NotSupported[string](p.Child("imagePullPolicy"), c.ImagePullPolicy, nil))
		}
		mounts := map[string]bool{}
		for j, m := range c.VolumeMounts {
			mp := p.Child("volumeMounts").Index(j)
			if !vols[m.Name] {
				errs = append(errs, field.NotFound(mp.Child("name"), m.Name))
			}
			if m.MountPath == "" || !path.IsAbs(m.MountPath) {
				errs = append(errs, field.Invalid(mp.Child("mountPath"), m.MountPath, "must be an absolute path"))
			}
			if mounts[m.MountPath] {
				errs = append(errs, field.Invalid(mp.Child("mountPath"), m.MountPath, "must be unique"))
			}
			mounts[m.MountPath] = true
		}
		for _, pr := range []struct {
			name  string
			probe *corev1.Probe
		}{{"livenessProbe", c.LivenessProbe}, {"readinessProbe", c.ReadinessProbe}, {"startupProbe", c.StartupProbe}} {
			if pr.probe != nil {
				errs = append(errs, validateProbe(pr.probe, p.Child(pr.name))...)
			}
		}
		if c.StartupProbe != nil && c.StartupProbe.SuccessThreshold > 1 {
			errs = append(errs, field.Invalid(p.Child("startupProbe", "successThreshold"), c.StartupProbe.SuccessThreshold, "must be 1"))
		}
		for j, port := range c.Ports {
			pp := p.Child("ports").Index(j)
			for _, m := range validation.IsValidPortNum(int(port.ContainerPort)) {
				errs = append(errs, field.Invalid(pp.Child("containerPort"), port.ContainerPort, m))
			}
			if s.HostNetwork && port.HostPort != 0 && port.HostPort != port.ContainerPort {
				errs = append(errs, field.Invalid(pp.Child("hostPort"), port.HostPort, "must match containerPort when hostNetwork is true"))
			}
		}
	}
	switch s.RestartPolicy {
	case "", corev1.RestartPolicyAlways, corev1.RestartPolicyOnFailure, corev1.RestartPolicyNever:
	default:
		errs = append(errs, field.NotSupported[string](spec.Child("restartPolicy"), s.RestartPolicy, nil))
	}
	if s.PriorityClassName != "" {
		for _, m := range validation.IsDNS1123Subdomain(s.PriorityClassName) {
			errs = append(errs, field.Invalid(spec.Child("priorityClassName"), s.PriorityClassName, m))
		}
	}
	if sc := s.SecurityContext; sc != nil && sc.SeccompProfile != nil {
		switch sc.SeccompProfile.Type {
		case corev1.SeccompProfileTypeRuntimeDefault, corev1.SeccompProfileTypeUnconfined:
		case corev1.SeccompProfileTypeLocalhost:
			if sc.SeccompProfile.LocalhostProfile == nil {
				errs = append(errs, field.Required(spec.Child("securityContext", "seccompProfile", "localhostProfile"), ""))
			}
		default:
			errs = append(errs, field.NotSupported[string](spec.Child("securityContext", "seccompProfile", "type"), sc.SeccompProfile.Type, nil))
		}
	}
	return errs
}

func validatePort(port intstr.IntOrString, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if port.Type == intstr.Int {
		for _, m := range validation.IsValidPortNum(port.IntValue()) {
			errs = append(errs, field.Invalid(p, port.IntValue(), m))
		}
	} else {
		for _, m := range validation.IsValidPortName(port.StrVal) {
			errs = append(errs, field.Invalid(p, port.StrVal, m))
		}
	}
	return errs
}

func validateProbe(pr *corev1.Probe, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	n := 0
	h := pr.ProbeHandler
	if h.Exec != nil {
		n++
	}
	if h.HTTPGet != nil {
		n++
		errs = append(errs, validatePort(h.HTTPGet.Port, p.Child("httpGet", "port"))...)
		switch h.HTTPGet.Scheme {
		case "", corev1.URISchemeHTTP, corev1.URISchemeHTTPS:
		default:
			errs = append(errs, field.NotSupported[string](p.Child("httpGet", "scheme"), h.HTTPGet.Scheme, nil))
		}
		if h.HTTPGet.Path != "" && !strings.HasPrefix(h.HTTPGet.Path, "/") {
			errs = append(errs, field.Invalid(p.Child("httpGet", "path"), h.HTTPGet.Path, "must start with /"))
		}
	}
	if h.TCPSocket != nil {
		n++
		errs = append(errs, validatePort(h.TCPSocket.Port, p.Child("tcpSocket", "port"))...)
	}
	if h.GRPC != nil {
		n++
		for _, m := range validation.IsValidPortNum(int(h.GRPC.Port)) {
			errs = append(errs, field.Invalid(p.Child("grpc", "port"), h.GRPC.Port, m))
		}
	}
	if n != 1 {
		errs = append(errs, field.Invalid(p, n, "a probe needs exactly one handler"))
	}
	for _, v := range []struct {
		name string
		val  int32
		min  int32
	}{
		{"initialDelaySeconds", pr.InitialDelaySeconds, 0},
		{"timeoutSeconds", pr.TimeoutSeconds, 0},
		{"periodSeconds", pr.PeriodSeconds, 0},
		{"successThreshold", pr.SuccessThreshold, 0},
		{"failureThreshold", pr.FailureThreshold, 0},
	} {
		if v.val < v.min {
			errs = append(errs, field.Invalid(p.Child(v.name), v.val, "must be non-negative"))
		}
	}
	return errs
}
