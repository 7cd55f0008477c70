defmodule HordeC.MetricsTest do
  @moduledoc """
  `hordec --metrics-port N`: a real hordec serving Prometheus metrics, scraped with `:httpc` and parsed strictly by
  the text format's rules (every sample under a TYPE, names and label names by the grammar, label values escaped,
  one block per family, no duplicate series), while a CRDT, a registry and a supervisor move the numbers. Also the
  HTTP side's bounds: 404/405, an oversized request, the connection cap, idle connections, loopback by default.
  """
  use HordeC.InteropCase, async: true

  @converge 10_000

  setup_all do
    {:ok, _} = Application.ensure_all_started(:inets)
    :ok
  end

  # ------------------------------------------------------------------ helpers

  defp free_port do
    {:ok, s} = :gen_tcp.listen(0, ip: {127, 0, 0, 1})
    {:ok, port} = :inet.port(s)
    :gen_tcp.close(s)
    port
  end

  # A hordec with a metrics port (retried on the rare race where another test took the free port meanwhile).
  defp start_with_metrics(opts \\ []) do
    port = free_port()
    extra = Keyword.get(opts, :args, [])
    h = start_hordec(Keyword.put(opts, :args, ["--metrics-port", "#{port}"] ++ extra))
    {h, port}
  end

  defp get(port, path \\ "/metrics", method \\ :get) do
    url = ~c"http://127.0.0.1:#{port}#{path}"

    {:ok, {{_, status, _}, headers, body}} =
      :httpc.request(method, {url, []}, [timeout: 5_000], body_format: :binary)

    {status, Map.new(headers, fn {k, v} -> {to_string(k), to_string(v)} end), body}
  end

  defp scrape(port) do
    {200, headers, body} = get(port)
    assert headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    parse!(body)
  end

  # The value of one series (labels as a map), or nil.
  defp value(metrics, name, labels \\ %{}) do
    case metrics[name] do
      nil -> nil
      fam -> fam.samples[labels]
    end
  end

  # ------------------------------------------------------------------ a strict text-format parser
  #
  # Returns %{family => %{type: "counter" | "gauge" | ..., help: text, samples: %{labels => value}}} and flunks on
  # anything the format does not allow.

  @name ~r/\A[a-zA-Z_:][a-zA-Z0-9_:]*\z/
  @label_name ~r/\A[a-zA-Z_][a-zA-Z0-9_]*\z/

  defp parse!(body) do
    assert String.ends_with?(body, "\n"), "the exposition must end with a newline"
    assert String.valid?(body), "the exposition must be UTF-8"

    {fams, _current, _closed} =
      body
      |> String.split("\n", trim: true)
      |> Enum.with_index(1)
      |> Enum.reduce({%{}, nil, MapSet.new()}, &parse_line/2)

    for {name, fam} <- fams do
      assert fam[:type], "#{name}: a HELP without a TYPE"
      assert fam.type in ["counter", "gauge"], "#{name}: unexpected type #{fam.type}"

      if fam.type == "counter" do
        assert String.ends_with?(name, "_total"), "counter #{name} must end in _total"

        for {l, v} <- fam.samples,
            do: assert(v >= 0, "#{name}#{inspect(l)} is a negative counter")
      end
    end

    fams
  end

  defp parse_line({"# HELP " <> rest, n}, {fams, cur, closed}) do
    [name, help] = split_first(rest, n)
    assert name =~ @name, "line #{n}: bad metric name #{inspect(name)}"
    fam = Map.get(fams, name, %{samples: %{}})
    refute Map.has_key?(fam, :help), "line #{n}: a second HELP for #{name}"
    refute MapSet.member?(closed, name), "line #{n}: #{name} reopened"
    assert help == unescape_help(help, n) |> escape_help(), "line #{n}: badly escaped HELP"

    {Map.put(fams, name, Map.put(fam, :help, unescape_help(help, n))), switch(cur, name),
     closed(cur, name, closed)}
  end

  defp parse_line({"# TYPE " <> rest, n}, {fams, cur, closed}) do
    [name, type] = split_first(rest, n)
    assert name =~ @name, "line #{n}: bad metric name #{inspect(name)}"
    fam = Map.get(fams, name, %{samples: %{}})
    refute Map.has_key?(fam, :type), "line #{n}: a second TYPE for #{name}"
    refute MapSet.member?(closed, name), "line #{n}: #{name} reopened"
    assert fam.samples == %{}, "line #{n}: TYPE after samples of #{name}"
    assert type in ~w(counter gauge histogram summary untyped), "line #{n}: unknown type #{type}"
    {Map.put(fams, name, Map.put(fam, :type, type)), switch(cur, name), closed(cur, name, closed)}
  end

  defp parse_line({"#" <> _, _n}, acc), do: acc

  defp parse_line({line, n}, {fams, cur, closed}) do
    {name, rest} = take_name(line)
    assert name =~ @name, "line #{n}: bad metric name in #{inspect(line)}"
    fam = fams[name]
    assert fam && fam[:type], "line #{n}: sample #{name} has no TYPE before it"
    assert cur == name, "line #{n}: sample #{name} outside its family's block"
    {labels, rest} = take_labels(rest, n)
    value = parse_value!(String.trim_leading(rest, " "), n)

    refute Map.has_key?(fam.samples, labels),
           "line #{n}: duplicate series #{name}#{inspect(labels)}"

    {Map.put(fams, name, put_in(fam.samples[labels], value)), cur, closed}
  end

  defp split_first(s, n) do
    case String.split(s, " ", parts: 2) do
      [a, b] -> [a, b]
      _ -> flunk("line #{n}: malformed comment #{inspect(s)}")
    end
  end

  defp switch(_cur, name), do: name
  defp closed(nil, _name, closed), do: closed
  defp closed(cur, name, closed) when cur == name, do: closed
  defp closed(cur, _name, closed), do: MapSet.put(closed, cur)

  defp take_name(line) do
    case Regex.run(~r/\A([a-zA-Z_:][a-zA-Z0-9_:]*)(.*)\z/s, line) do
      [_, name, rest] -> {name, rest}
      nil -> flunk("not a sample line: #{inspect(line)}")
    end
  end

  defp take_labels("{" <> rest, n), do: take_label_pairs(rest, %{}, n)
  defp take_labels(rest, _n), do: {%{}, rest}

  defp take_label_pairs("}" <> rest, acc, _n), do: {acc, rest}

  defp take_label_pairs(s, acc, n) do
    case Regex.run(~r/\A([^=]*)="(.*)\z/s, s) do
      [_, lname, rest] ->
        assert lname =~ @label_name, "line #{n}: bad label name #{inspect(lname)}"
        refute String.starts_with?(lname, "__"), "line #{n}: reserved label name #{lname}"
        refute Map.has_key?(acc, lname), "line #{n}: label #{lname} twice"
        {value, rest} = take_label_value(rest, [], n)
        acc = Map.put(acc, lname, value)

        case rest do
          "," <> more -> take_label_pairs(more, acc, n)
          "}" <> more -> {acc, more}
          _ -> flunk("line #{n}: expected , or } after a label value")
        end

      nil ->
        flunk("line #{n}: malformed labels #{inspect(s)}")
    end
  end

  defp take_label_value("\\\\" <> rest, acc, n), do: take_label_value(rest, ["\\" | acc], n)
  defp take_label_value("\\\"" <> rest, acc, n), do: take_label_value(rest, ["\"" | acc], n)
  defp take_label_value("\\n" <> rest, acc, n), do: take_label_value(rest, ["\n" | acc], n)
  defp take_label_value("\\" <> _, _acc, n), do: flunk("line #{n}: a bad escape in a label value")

  defp take_label_value("\"" <> rest, acc, _n),
    do: {acc |> Enum.reverse() |> IO.iodata_to_binary(), rest}

  defp take_label_value("", _acc, n), do: flunk("line #{n}: unterminated label value")

  defp take_label_value(s, acc, n) do
    {c, rest} = String.split_at(s, 1)
    take_label_value(rest, [c | acc], n)
  end

  defp unescape_help(s, n) do
    Regex.split(~r/(\\\\|\\n)/, s, include_captures: true)
    |> Enum.map_join(fn
      "\\\\" ->
        "\\"

      "\\n" ->
        "\n"

      part ->
        if String.contains?(part, "\\"), do: flunk("line #{n}: bad escape in HELP"), else: part
    end)
  end

  defp escape_help(s), do: s |> String.replace("\\", "\\\\") |> String.replace("\n", "\\n")

  defp parse_value!(s, n) do
    v =
      case String.split(s, " ") do
        [v] ->
          v

        [v, ts] ->
          assert ts =~ ~r/\A-?\d+\z/, "line #{n}: bad timestamp"
          v

        _ ->
          flunk("line #{n}: malformed value #{inspect(s)}")
      end

    case v do
      "NaN" -> :nan
      "+Inf" -> :inf
      "-Inf" -> :neg_inf
      _ -> number!(v, n)
    end
  end

  defp number!(v, n) do
    case Integer.parse(v) do
      {i, ""} ->
        i

      _ ->
        case Float.parse(v) do
          {f, ""} -> f
          _ -> flunk("line #{n}: not a number: #{inspect(v)}")
        end
    end
  end

  # ------------------------------------------------------------------ tests

  test "the parser itself rejects what the format forbids" do
    good = "# HELP a_total x \\\\ y\\n\n# TYPE a_total counter\na_total{l=\"q\\\"\\\\\\n\"} 1\n"
    assert %{"a_total" => %{samples: %{%{"l" => "q\"\\\n"} => 1}}} = parse!(good)

    for bad <- [
          "a 1\n",
          "# TYPE a gauge\na{l=\"x\\y\"} 1\n",
          "# TYPE a gauge\na{1l=\"x\"} 1\n",
          "# TYPE a gauge\n# TYPE b gauge\na 1\n",
          "# TYPE a gauge\na 1\na 2\n",
          "# TYPE 1a gauge\n",
          "# TYPE a gauge\na one\n"
        ] do
      assert_raise ExUnit.AssertionError, fn -> parse!(bad) end
    end
  end

  test "GET /metrics answers the text format; other paths 404, other methods 405, HEAD no body" do
    {h, port} = start_with_metrics()
    m = scrape(port)
    assert value(m, "hordec_info", %{"node" => to_string(h.node), "version" => "0.1.0"}) == 1
    assert value(m, "hordec_processes") >= 1
    assert value(m, "process_resident_memory_bytes") > 0
    assert value(m, "hordec_loop_iterations_total") > 0
    assert is_number(value(m, "hordec_loop_longest_iteration_seconds"))
    assert value(m, "hordec_replicas", %{"kind" => "crdt"}) == 0

    assert {404, _, body} = get(port, "/")
    assert body =~ "/metrics"
    assert {404, _, _} = get(port, "/metricsx")
    assert {200, _, _} = get(port, "/metrics?x=1")
    assert {405, headers, _} = get(port, "/metrics", :delete)
    assert headers["allow"] == "GET, HEAD"
    assert {200, headers, ""} = get(port, "/metrics", :head)
    assert String.to_integer(headers["content-length"]) > 0
  end

  test "values move with a CRDT, a registry and a supervisor driven through the client" do
    {h1, port} = start_with_metrics()
    h2 = start_hordec()
    connect_all([h1, h2])
    m0 = scrape(port)
    peer = %{"node" => to_string(h2.node)}
    assert value(m0, "hordec_peers") == 2, "h2 and this runner"
    assert is_integer(value(m0, "hordec_peer_messages_sent_total", peer))

    # a CRDT replicated from h1 to h2
    crdt = :"metrics_crdt_#{System.unique_integer([:positive])}"
    assert {:ok, _} = ctl(h2, {:crdt_start, crdt, []})
    assert GenServer.call({crdt, h2.node}, {:set_neighbours, [{crdt, h1.node}]}) == :ok
    start_supervised!({HordeC.Crdt, name: crdt, hordec: h1.node}, id: crdt)
    HordeC.Crdt.set_neighbours(crdt, [{crdt, h2.node}])
    for i <- 1..50, do: HordeC.Crdt.put(crdt, {:k, i}, String.duplicate("v", 100))
    rep = %{"replica" => to_string(crdt), "kind" => "crdt"}

    eventually(
      fn ->
        m = scrape(port)
        assert value(m, "hordec_replica_keys", rep) == 50
        assert value(m, "hordec_replica_in_sync", rep) == 1
        assert value(m, "hordec_replica_neighbours", rep) == 1
        assert value(m, "hordec_replica_sync_bytes_sent_total", rep) > 50 * 100
        assert value(m, "hordec_replica_sync_messages_received_total", rep) > 0
      end,
      @converge
    )

    # a registry with three names
    reg = :"metrics_reg_#{System.unique_integer([:positive])}"
    start_supervised!({HordeC.Registry, name: reg, keys: :unique, hordec: [h1.node]}, id: reg)

    for i <- 1..3 do
      {:ok, _} = Agent.start(fn -> i end, name: {:via, HordeC.Registry, {reg, {:name, i}}})
    end

    # a supervisor with two C workers (only a hordec replica can run them: h1's)
    sup = :"metrics_sup_#{System.unique_integer([:positive])}"

    start_supervised!(
      {HordeC.DynamicSupervisor, name: sup, strategy: :one_for_one, hordec: [h1.node]},
      id: sup
    )

    for _ <- 1..2 do
      assert {:ok, _} =
               HordeC.DynamicSupervisor.start_child(sup, {HordeC.CWorker, type: "echo", arg: []})
    end

    # a message the replica must refuse (not a replica envelope)
    send({crdt, h1.node}, :not_a_replica_message)

    eventually(
      fn ->
        m = scrape(port)
        r = %{"registry" => to_string(reg)}
        s = %{"supervisor" => to_string(sup)}
        assert value(m, "hordec_registry_entries", r) == 3
        assert value(m, "hordec_registry_names", r) == 3
        assert value(m, "hordec_registry_clients", r) >= 1
        assert value(m, "hordec_supervisor_children", s) == 2
        assert value(m, "hordec_supervisor_children_running_here", s) == 2
        assert value(m, "hordec_replicas", %{"kind" => "registry"}) == 1
        assert value(m, "hordec_replicas", %{"kind" => "supervisor"}) == 1

        assert value(m, "hordec_replica_keys", %{
                 "replica" => to_string(reg),
                 "kind" => "registry"
               }) > 0

        assert value(m, "hordec_replica_rejected_messages_total", rep) >= 1
        assert value(m, "hordec_process_messages_received_total") > 0
      end,
      @converge
    )

    m1 = scrape(port)

    for c <- ~w(hordec_peer_messages_sent_total hordec_peer_messages_received_total
               hordec_peer_bytes_sent_total hordec_peer_bytes_received_total) do
      assert value(m1, c, peer) > value(m0, c, peer), "#{c} did not move"
    end

    assert value(m1, "hordec_loop_iterations_total") > value(m0, "hordec_loop_iterations_total")

    assert value(m1, "hordec_loop_busy_seconds_total") >=
             value(m0, "hordec_loop_busy_seconds_total")
  end

  test "bounded: an oversized request gets 431, extra connections are closed, idle ones time out" do
    {_h, port} = start_with_metrics()
    connect = fn -> :gen_tcp.connect(~c"127.0.0.1", port, [:binary, active: false], 2_000) end

    {:ok, s} = connect.()
    :ok = :gen_tcp.send(s, "GET /metrics HTTP/1.1\r\nX-Filler: " <> String.duplicate("a", 9_000))
    {:ok, reply} = :gen_tcp.recv(s, 0, 5_000)
    assert reply =~ "HTTP/1.1 431"
    assert recv_all(s) == :closed

    {:ok, s} = connect.()
    :ok = :gen_tcp.send(s, "POST /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello")
    {:ok, reply} = :gen_tcp.recv(s, 0, 5_000)
    assert reply =~ "HTTP/1.1 400"
    :gen_tcp.close(s)

    # keep-alive: two pipelined requests on one connection, both answered
    {:ok, s} = connect.()
    req = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
    :ok = :gen_tcp.send(s, req <> req)
    assert eventually_count(s, "HTTP/1.1 200 OK", 2)
    :gen_tcp.close(s)

    # the connection cap: the 17th connection is closed at once, the first 16 still work
    Process.sleep(300)
    held = for _ <- 1..16, do: elem(connect.(), 1)
    Process.sleep(200)
    {:ok, extra} = connect.()
    assert :gen_tcp.recv(extra, 0, 5_000) == {:error, :closed}
    :ok = :gen_tcp.send(hd(held), req)
    {:ok, reply} = :gen_tcp.recv(hd(held), 0, 5_000)
    assert reply =~ "HTTP/1.1 200 OK"

    # idle connections are closed (after 10 s; generous bound)
    t0 = System.monotonic_time(:millisecond)
    assert :gen_tcp.recv(List.last(held), 0, 30_000) == {:error, :closed}
    waited = System.monotonic_time(:millisecond) - t0
    IO.puts("metrics: an idle connection was closed after #{waited} ms")
    for s <- held, do: :gen_tcp.close(s)

    # and the endpoint still answers
    assert {200, _, _} = get(port)
  end

  test "listens on loopback by default, on --metrics-bind's address otherwise" do
    {_h, port} = start_with_metrics()
    assert listen_addresses(port) == ["0100007F"]
    {_h, port2} = start_with_metrics(args: ["--metrics-bind", "0.0.0.0"])
    assert listen_addresses(port2) == ["00000000"]
  end

  test "a metrics port in use or a bad bind address: exit status 1 with a message" do
    {:ok, s} = :gen_tcp.listen(0, ip: {127, 0, 0, 1})
    {:ok, port} = :inet.port(s)
    name = "#{unique_name("mbusy")}@127.0.0.1"
    r = run_hordec(["--name", name, "--cookie", "c", "--metrics-port", "#{port}"])
    assert r.status == 1
    assert r.stderr =~ "cannot serve metrics on 127.0.0.1 port #{port}"
    :gen_tcp.close(s)

    r =
      run_hordec([
        "--name",
        name,
        "--cookie",
        "c",
        "--metrics-port",
        "1",
        "--metrics-bind",
        "nope"
      ])

    assert r.status == 1
    assert r.stderr =~ "--metrics-bind wants an IPv4 or IPv6 address"

    r = run_hordec(["--name", name, "--cookie", "c", "--metrics-port", "0"])
    assert r.status == 2
    assert r.stderr =~ "--metrics-port wants a port from 1 to 65535"
  end

  # Local addresses (hex, as /proc/net/tcp writes them) of the sockets listening on `port`.
  defp listen_addresses(port) do
    hex_port = port |> Integer.to_string(16) |> String.pad_leading(4, "0")

    for line <- File.read!("/proc/net/tcp") |> String.split("\n") |> Enum.drop(1),
        [_, local, _, "0A" | _] <- [String.split(line)],
        [addr, ^hex_port] <- [String.split(local, ":")],
        do: addr
  end

  defp recv_all(s) do
    case :gen_tcp.recv(s, 0, 5_000) do
      {:ok, _} -> recv_all(s)
      {:error, reason} -> reason
    end
  end

  # Reads until `pattern` was seen `n` times (or fails after 5 s).
  defp eventually_count(s, pattern, n, acc \\ "") do
    if length(String.split(acc, pattern)) - 1 >= n do
      true
    else
      case :gen_tcp.recv(s, 0, 5_000) do
        {:ok, data} ->
          eventually_count(s, pattern, n, acc <> data)

        {:error, reason} ->
          flunk("got #{length(String.split(acc, pattern)) - 1} of #{n}: #{reason}")
      end
    end
  end
end
