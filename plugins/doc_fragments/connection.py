# Copyright (c) 2026 polyvirt.compute contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    # Mirrors COMMON_ARGS (backend, connection) in plugins/module_utils/_args.py one to one.
    DOCUMENTATION = r"""
options:
  backend:
    description:
      - The platform to manage.
      - Only the selected backend's Python library is imported.
    type: str
    required: true
    choices: [lxd, proxmox, hikube, cloudcix, hyperv]
  connection:
    description:
      - Where and how to connect to the backend. Each backend uses its own subset of keys; a key of another
        backend is refused.
      - Every key can also be set with an environment variable E(POLYVIRT_<BACKEND>_<KEY>), for example
        E(POLYVIRT_LXD_URL) or E(POLYVIRT_PROXMOX_API_TOKEN_SECRET). A key given in the task wins.
      - Use C(module_defaults) with the action group C(group/polyvirt.compute.all) to set it once per play.
    type: dict
    default: {}
    suboptions:
      url:
        description:
          - B(lxd). The LXD API, V(unix:/path/to/unix.socket) or V(https://host:8443).
          - Defaults to the local unix socket (the Debian package's, then the snap's; E(LXD_DIR) is honoured).
        type: str
      client_cert:
        description: B(lxd). Client certificate (PEM) trusted by the LXD server, for an HTTPS O(connection.url).
        type: path
      client_key:
        description: B(lxd). Private key (PEM) of O(connection.client_cert).
        type: path
      validate_certs:
        description:
          - B(lxd), B(proxmox), B(hikube), B(hyperv). Verify the server's TLS certificate.
          - Defaults to V(true). V(false) disables verification for every request of the task.
        type: bool
      ca_path:
        description: B(lxd), B(proxmox), B(hyperv). CA bundle (or the server's own certificate) to verify the server with.
        type: path
      project:
        description: B(lxd). The LXD project. Defaults to V(default).
        type: str
      target:
        description: B(lxd). The cluster member new instances are placed on.
        type: str
      api_host:
        description: B(proxmox), required there. The Proxmox VE host.
        type: str
      api_port:
        description: B(proxmox). The API port. Defaults to V(8006).
        type: int
      api_user:
        description: B(proxmox). The user, for example V(root@pam).
        type: str
      api_password:
        description: B(proxmox). The user's password (or use an API token).
        type: str
      api_token_id:
        description: B(proxmox). The API token id, for example V(polyvirt) of V(root@pam!polyvirt).
        type: str
      api_token_secret:
        description: B(proxmox). The API token secret.
        type: str
      node:
        description: B(proxmox). The node new guests are created on.
        type: str
      kubeconfig:
        description: B(hikube). Path of a kubeconfig file.
        type: path
      context:
        description: B(hikube). The kubeconfig context.
        type: str
      host:
        description:
          - B(hikube). The Kubernetes API URL.
          - B(hyperv), required there. The Hyper-V host.
        type: str
      api_key:
        description:
          - B(hikube). A bearer token.
          - B(cloudcix). The API key of the account.
        type: str
      namespace:
        description: B(hikube), required there. The tenant namespace.
        type: str
      ca_cert:
        description: B(hikube). CA certificate of the Kubernetes API.
        type: path
      api_url:
        description: B(cloudcix). The API base URL; each application is a sub-domain of it, and a single base URL also works.
        type: str
      email:
        description: B(cloudcix). The account's email.
        type: str
      password:
        description: B(cloudcix), B(hyperv). The password.
        type: str
      project_id:
        description: B(cloudcix). The project new instances are created in.
        type: str
      port:
        description: B(hyperv). The WinRM port.
        type: int
      scheme:
        description: B(hyperv). V(http) or V(https).
        type: str
        choices: [http, https]
      username:
        description: B(hyperv). The Windows user.
        type: str
      transport:
        description: B(hyperv). The WinRM authentication. Defaults to V(ntlm).
        type: str
        choices: [ntlm, kerberos, credssp, basic]
      vm_path:
        description: B(hyperv). Where new VMs and their disks are stored on the host.
        type: str
      switch:
        description: B(hyperv). The default virtual switch.
        type: str
"""
