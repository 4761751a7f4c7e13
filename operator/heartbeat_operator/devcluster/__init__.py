"""The local control plane for development and tests (``heartbeat-operator dev …``).

Builds (via ``hack/build-controlplane.sh``) and runs etcd, kube-apiserver and
kube-controller-manager on 127.0.0.1, the way controller-runtime's envtest does.
Never imported by the operator itself.
"""
