defmodule HordeC.Test.TlsCerts do
  @moduledoc """
  Certificates for TLS distribution tests, generated for each run with `:public_key` (no
  `openssl` command needed), and the `ssl_dist_optfile`s that BEAM nodes and hordec share.

  `generate!(dir)` writes, as PEM:

    * `ca.pem` – the run's CA;
    * `node.pem` / `node.key` – a node certificate signed by it, for `127.0.0.1` and
      `localhost` (every node of the run uses it, as a cluster with one certificate would);
    * `expired.pem` / `expired.key` – signed by the same CA, valid only in 2020;
    * `other_ca.pem`, `other.pem` / `other.key` – a second CA and a node certificate of its own;
    * `ssl_dist.conf` – the optfile of the run: `verify_peer` both ways,
      `fail_if_no_peer_cert`, TLS 1.2 and 1.3.

  `optfile!(dir, name, server, client)` writes further optfiles for refusal tests.
  """

  require Record

  Record.defrecordp(
    :extension,
    :Extension,
    Record.extract(:Extension, from_lib: "public_key/include/public_key.hrl")
  )

  @san_oid {2, 5, 29, 17}
  # P-256 and SHA-256: :public_key's default test keys and digest are too weak for OpenSSL 3's default
  # security level.
  @key {:namedCurve, :secp256r1}

  @doc """
  Generates the CA, the certificates and the run's optfile (named `optfile`) into `dir`; returns
  the optfile's path.
  """
  @spec generate!(Path.t(), String.t()) :: Path.t()
  def generate!(dir, optfile \\ "ssl_dist.conf") do
    File.mkdir_p!(dir)
    ca = :public_key.pkix_test_root_cert(~c"HordeC test CA", key: @key, digest: :sha256)
    other_ca = :public_key.pkix_test_root_cert(~c"HordeC other CA", key: @key, digest: :sha256)
    write_cert!(Path.join(dir, "ca.pem"), ca.cert)
    write_cert!(Path.join(dir, "other_ca.pem"), other_ca.cert)
    node_cert!(dir, "node", ca, [])
    node_cert!(dir, "expired", ca, validity: {{2020, 1, 1}, {2020, 1, 2}})
    node_cert!(dir, "other", other_ca, [])

    optfile!(dir, optfile, server_opts(dir), client_opts(dir))
  end

  @doc "The server options of the run's optfile (a keyword list of Erlang terms), for variants."
  @spec server_opts(Path.t(), String.t()) :: keyword()
  def server_opts(dir, cert \\ "node") do
    [
      certfile: c(dir, "#{cert}.pem"),
      keyfile: c(dir, "#{cert}.key"),
      cacertfile: c(dir, "ca.pem"),
      verify: :verify_peer,
      fail_if_no_peer_cert: true,
      versions: [:"tlsv1.2", :"tlsv1.3"],
      secure_renegotiate: true,
      depth: 3
    ]
  end

  @doc "The client options of the run's optfile; `cert: nil` leaves the client certificate out."
  @spec client_opts(Path.t(), String.t() | nil) :: keyword()
  def client_opts(dir, cert \\ "node") do
    cert_opts =
      if cert, do: [certfile: c(dir, "#{cert}.pem"), keyfile: c(dir, "#{cert}.key")], else: []

    cert_opts ++
      [
        cacertfile: c(dir, "ca.pem"),
        verify: :verify_peer,
        versions: [:"tlsv1.2", :"tlsv1.3"],
        secure_renegotiate: true,
        depth: 3
      ]
  end

  @doc """
  Writes `[{server, Server}, {client, Client}].` to `dir/name` in Erlang term syntax (the file a
  BEAM reads for `-ssl_dist_optfile` and hordec for `--ssl-dist-optfile`); returns its path.
  """
  @spec optfile!(Path.t(), String.t(), keyword(), keyword()) :: Path.t()
  def optfile!(dir, name, server, client) do
    path = Path.join(dir, name)
    text = :io_lib.format(~c"~p.~n", [[server: server, client: client]])
    File.write!(path, text)
    path
  end

  defp c(dir, file), do: String.to_charlist(Path.join(dir, file))

  defp node_cert!(dir, name, ca, opts) do
    san =
      extension(
        extnID: @san_oid,
        critical: false,
        # inet_tls_dist checks the host of the node name as a DNS name, even "127.0.0.1"
        extnValue: [iPAddress: [127, 0, 0, 1], dNSName: ~c"127.0.0.1", dNSName: ~c"localhost"]
      )

    peer = [key: @key, digest: :sha256, extensions: [san]] ++ opts
    data = :public_key.pkix_test_data(%{root: ca, peer: peer})
    write_cert!(Path.join(dir, "#{name}.pem"), data[:cert])
    {type, der} = data[:key]
    key_path = Path.join(dir, "#{name}.key")
    File.write!(key_path, :public_key.pem_encode([{type, der, :not_encrypted}]))
    File.chmod!(key_path, 0o600)
  end

  defp write_cert!(path, der),
    do: File.write!(path, :public_key.pem_encode([{:Certificate, der, :not_encrypted}]))
end
