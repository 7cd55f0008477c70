defmodule HordeC.TlsTest do
  @moduledoc """
  Distribution over TLS (`inet_tls_dist`): hordec nodes started with `--ssl-dist-optfile` and BEAM
  peers started with `-proto_dist inet_tls -ssl_dist_optfile` share one optfile and the
  certificates generated for the run (`HordeC.Test.TlsCerts`). Every check goes through a TLS
  peer, so the file runs the same whether the runner itself is plain (the default) or TLS
  (`HORDEC_TLS=1`). Refusals each have a test, and so does bad input before and after the TLS
  handshake.
  """
  use HordeC.InteropCase, async: false

  alias HordeC.Crdt
  alias HordeC.Test.{TlsCerts, TlsHelpers}

  setup_all do
    dir = tls_dir()
    %{dir: dir, optfile: Path.join(dir, "ssl_dist.conf")}
  end

  defp tls_peer(optfile, opts \\ []),
    do: start_peer([tls: optfile, connection: :standard_io] ++ opts)

  defp plain_peer(opts \\ []), do: start_peer([tls: false, connection: :standard_io] ++ opts)

  # GenServer.call({:hordec, h}, req) made by the peer (the runner may not speak h's transport).
  defp hcall(p, h, req, timeout \\ 5_000),
    do: peer_call(p, GenServer, :call, [{:hordec, node_of(h)}, req, timeout])

  defp ping(p, node), do: peer_call(p, Node, :ping, [node_of(node)])

  defp variant!(dir, name, server, client), do: TlsCerts.optfile!(dir, name, server, client)

  describe "BEAM and hordec over TLS" do
    test "a BEAM node connects, calls, monitors and fails fast on noproc", %{optfile: f} do
      h = start_hordec(tls: f)
      p = tls_peer(f)
      assert ping(p, h) == :pong
      assert hcall(p, h, {:echo, {:tls, "ok", [1, 2.5]}}) == {:tls, "ok", [1, 2.5]}
      assert h.node in peer_call(p, Node, :list, [:hidden])
      {tag, us} = peer_call(p, TlsHelpers, :noproc_call, [h.node])
      assert tag == :noproc
      assert us < 1_000_000, "noproc must be answered at once, took #{us} µs"
      assert peer_call(p, TlsHelpers, :monitor_c_process, [h.node, :over_tls]) == :over_tls
      assert peer_call(p, TlsHelpers, :c_watches_beam, [h.node]) == :gone
      assert_log(h, ~r/distribution over TLS \(server: verify_peer fail_if_no_peer_cert/)
    end

    test "hordec dials a BEAM node and calls it", %{optfile: f} do
      h = start_hordec(tls: f)
      p = tls_peer(f)
      q = tls_peer(f)
      {:ok, _} = peer_call(q, EchoServer, :start, [:tls_echo])
      assert hcall(p, h, {:connect, q.node}) == :ok
      assert hcall(p, h, {:call, q.node, :tls_echo, {:echo, :hi}, 3_000}) == {:ok, :hi}
      assert hcall(p, h, {:call, q.node, :nobody, :x, 3_000}) == {:error, :noproc}
      assert_log(h, ~r/node #{Regex.escape(Atom.to_string(q.node))} up \(we connected/)
    end

    test "replicas on hordec nodes sync over TLS, through a partition and its heal", %{optfile: f} do
      [h1, h2] = for _ <- 1..2, do: start_hordec(tls: f)
      p = tls_peer(f)
      assert hcall(p, h1, {:connect, h2.node}) == :ok
      {:ok, _} = peer_call(p, Application, :ensure_all_started, [:horde_c])

      locals =
        for {h, i} <- Enum.with_index([h1, h2], 1) do
          name = :"tls_m_#{i}"
          opts = [name: name, hordec: h.node, replica: :m]
          {:ok, _} = peer_call(p, PeerHelpers, :start_link_trapping, [Crdt, opts])
          name
        end

      [l1, l2] = locals
      nbrs = [{:m, h1.node}, {:m, h2.node}]
      for l <- locals, do: assert(peer_call(p, Crdt, :set_neighbours, [l, nbrs]) == :ok)
      read = fn l -> peer_call(p, Crdt, :to_map, [l]) end

      peer_call(p, Crdt, :put, [l1, "a", 1])
      eventually(fn -> read.(l2) == %{"a" => 1} end, 10_000)

      assert hcall(p, h1, {:block_peers, [h2.node]}) == :ok
      assert hcall(p, h2, {:block_peers, [h1.node]}) == :ok
      eventually(fn -> h2.node not in hcall(p, h1, :info).peers end)
      peer_call(p, Crdt, :put, [l1, "b", 2])
      peer_call(p, Crdt, :put, [l2, "c", 3])
      Process.sleep(200)
      refute Map.has_key?(read.(l2), "b"), "a write crossed the partition"

      assert hcall(p, h1, {:unblock_peers, [h2.node]}) == :ok
      assert hcall(p, h2, {:unblock_peers, [h1.node]}) == :ok
      assert hcall(p, h1, {:connect, h2.node}) == :ok
      want = %{"a" => 1, "b" => 2, "c" => 3}
      eventually(fn -> read.(l1) == want and read.(l2) == want end, 10_000)
    end

    test "--tls-cert/--tls-key/--tls-ca flags work like the optfile", %{dir: dir, optfile: f} do
      file = &Path.join(dir, &1)

      h =
        start_hordec(
          tls: false,
          args:
            ["--tls-cert", file.("node.pem"), "--tls-key", file.("node.key")] ++
              ["--tls-ca", file.("ca.pem"), "--tls-verify", "peer"]
        )

      p = tls_peer(f)
      assert ping(p, h) == :pong
      assert hcall(p, h, :ping) == :pong
    end
  end

  describe "refusals" do
    test "a client certificate from another CA is refused before the handshake", %{
      dir: dir,
      optfile: f
    } do
      h = start_hordec(tls: f)

      # The peer trusts our CA (so it accepts hordec's certificate) but presents one of another CA.
      other =
        variant!(
          dir,
          "other_client.conf",
          TlsCerts.server_opts(dir, "other"),
          TlsCerts.client_opts(dir, "other")
        )

      p = tls_peer(other)
      assert ping(p, h) == :pang

      assert_log(h, [
        ~r/^warn hordec: rejected connection/,
        ~r/certificate was refused/,
        ~r/issuer/
      ])

      refute p.node in hcall(tls_peer(f), h, :info).peers
    end

    test "an expired client certificate is refused", %{dir: dir, optfile: f} do
      h = start_hordec(tls: f)

      exp =
        variant!(
          dir,
          "expired.conf",
          TlsCerts.server_opts(dir),
          TlsCerts.client_opts(dir, "expired")
        )

      p = tls_peer(exp)
      assert ping(p, h) == :pang
      assert_log(h, [~r/rejected connection/, ~r/certificate has expired/])
      _ = f
    end

    test "a client without a certificate is refused under fail_if_no_peer_cert", %{dir: dir} do
      h = start_hordec(tls: Path.join(dir, "ssl_dist.conf"))

      nocert =
        variant!(dir, "nocert.conf", TlsCerts.server_opts(dir), TlsCerts.client_opts(dir, nil))

      p = tls_peer(nocert)
      assert ping(p, h) == :pang
      assert_log(h, [~r/rejected connection/, ~r/sent no certificate/])
    end

    test "hordec refuses a server certificate from another CA, or one not naming the host", %{
      dir: dir,
      optfile: f
    } do
      # The BEAM node serves a certificate of another CA: hordec, dialling, refuses it.
      q_file =
        variant!(
          dir,
          "other_server.conf",
          TlsCerts.server_opts(dir, "other"),
          TlsCerts.client_opts(dir)
        )

      q = tls_peer(q_file)
      h = start_hordec(tls: f)
      p = tls_peer(f)
      assert hcall(p, h, {:connect, q.node}) == {:error, :auth}
      assert_log(h, [~r/cannot connect to #{Regex.escape(Atom.to_string(q.node))}/, ~r/issuer/])

      # server_name_indication configured to a name the (valid) certificate does not carry.
      sni =
        variant!(
          dir,
          "sni.conf",
          TlsCerts.server_opts(dir),
          TlsCerts.client_opts(dir) ++ [server_name_indication: ~c"db.example.org"]
        )

      h2 = start_hordec(tls: sni)
      r = tls_peer(f)
      assert hcall(p, h2, {:connect, r.node}) == {:error, :auth}
      assert_log(h2, [~r/cannot connect to/, ~r/hostname mismatch/])
    end

    test "a plain-TCP node cannot join a TLS hordec, nor a TLS node a plain hordec", %{optfile: f} do
      h = start_hordec(tls: f)
      plain = plain_peer()
      assert ping(plain, h) == :pang

      assert_log(
        h,
        ~r/refused a plain-TCP distribution handshake: this node speaks distribution over TLS only/
      )

      h_plain = start_hordec(tls: false)
      p = tls_peer(f)
      assert ping(p, h_plain) == :pang
      assert_log(h_plain, ~r/refused a TLS connection: this node runs plain-TCP distribution/)

      # A TLS hordec dialling a plain node: the node waits for a handshake it cannot parse and closes it
      # (its net_setuptime, 7 s), or our own setup timeout does; either way the dial fails and says why.
      assert hcall(p, h, {:connect, plain.node}, 30_000) == {:error, :noconnection}
      assert_log(h, ~r/cannot connect to #{Regex.escape(Atom.to_string(plain.node))}: TLS/)

      # ... and a plain hordec dialling a TLS node says what is wrong.
      assert hcall(plain, h_plain, {:connect, p.node}) == {:error, :noconnection}
      assert_log(h_plain, ~r/answered with TLS: it runs distribution over TLS/)
    end

    test "a wrong cookie is refused over valid TLS", %{optfile: f} do
      h = start_hordec(tls: f)
      p = tls_peer(f, cookie: :not_the_cookie)
      assert ping(p, h) == :pang

      assert_log(h, [~r/^warn hordec: /, ~r/#{Regex.escape(Atom.to_string(p.node))}/, ~r/cookie/i])
    end

    test "bad optfiles are refused at start with the option named", %{dir: dir} do
      bad =
        variant!(
          dir,
          "bad.conf",
          TlsCerts.server_opts(dir) ++ [ciphers: [~c"AES128"]],
          TlsCerts.client_opts(dir)
        )

      r =
        run_hordec([
          "--name",
          unique_name("b") <> "@127.0.0.1",
          "--cookie",
          "c",
          "--ssl-dist-optfile",
          bad
        ])

      assert r.status == 2
      assert r.stderr =~ "unsupported option ciphers in the server options"

      missing = Path.join(dir, "nowhere.conf")

      r =
        run_hordec([
          "--name",
          unique_name("b") <> "@127.0.0.1",
          "--cookie",
          "c",
          "--ssl-dist-optfile",
          missing
        ])

      assert r.status == 2
      assert r.stderr =~ "cannot read ssl_dist_optfile"
    end
  end

  describe "bad input over TLS" do
    setup %{optfile: f} do
      # debug: a handshake that times out is logged at debug level only
      h = start_hordec(tls: f, log_level: "debug")
      p = tls_peer(f)
      assert ping(p, h) == :pong
      %{h: h, p: p}
    end

    test "garbage before the TLS handshake is dropped", %{h: h, p: p} do
      {:ok, s} = :gen_tcp.connect(~c"127.0.0.1", h.dist_port, [:binary, active: false])
      :ok = :gen_tcp.send(s, :crypto.strong_rand_bytes(64) |> then(&(<<0x42>> <> &1)))
      assert {:error, :closed} = :gen_tcp.recv(s, 0, 5_000)
      assert_log(h, ~r/dropped incoming connection: .*not a TLS ClientHello/)
      assert hcall(p, h, :ping) == :pong
    end

    test "garbage after the TLS handshake is dropped", %{h: h, p: p, dir: dir} do
      {:ok, _} = Application.ensure_all_started(:ssl)

      opts = [
        :binary,
        active: false,
        certfile: Path.join(dir, "node.pem") |> String.to_charlist(),
        keyfile: Path.join(dir, "node.key") |> String.to_charlist(),
        cacertfile: Path.join(dir, "ca.pem") |> String.to_charlist(),
        verify: :verify_peer
      ]

      for garbage <- [<<0, 0, 0, 5, "hello">>, <<255, 255, 255, 255, 1, 2, 3>>] do
        mark = log_mark(h)
        {:ok, s} = :ssl.connect(~c"127.0.0.1", h.dist_port, opts, 5_000)
        :ok = :ssl.send(s, garbage)
        assert {:error, _} = :ssl.recv(s, 0, 5_000)

        assert_log(
          h,
          ~r/dropped incoming connection|rejected connection|closed during the handshake/,
          since: mark
        )
      end

      assert hcall(p, h, {:echo, :still_here}) == :still_here
    end

    test "a client stalling mid-handshake is closed after the setup timeout", %{h: h, p: p} do
      {:ok, s} = :gen_tcp.connect(~c"127.0.0.1", h.dist_port, [:binary, active: false])
      # The first bytes of a TLS record carrying a ClientHello, then nothing.
      :ok = :gen_tcp.send(s, <<0x16, 0x03, 0x01, 0x01, 0x00, 0x01, 0x00, 0x00>>)
      assert hcall(p, h, :ping) == :pong, "a stalled handshake must not stall the node"

      # The setup timeout (7 s, checked on the node's tick) closes it; 20 s is only the test's bound.
      assert {:error, :closed} = :gen_tcp.recv(s, 0, 20_000)
      assert_log(h, ~r/TLS handshake with 127\.0\.0\.1:\d+ did not complete in time/)
    end
  end
end
