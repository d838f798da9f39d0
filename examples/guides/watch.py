"""Watching files: what a command does in a folder, as it happens, in folders made later too."""

from crownest import CrowNest

with CrowNest() as client, client.sandboxes.create(template="python") as sandbox:
    sandbox.files.mkdir("project")
    # files.watch() starts the watch and returns a WatchHandle, an iterator of FileEvents.
    with sandbox.files.watch("project", recursive=True) as watch:
        sandbox.files.mkdir("project/out")
        event = next(watch)  # the new folder is watched before its event arrives
        print(event.type_, event.path, "folder" if event.is_dir else "file")

        sandbox.commands.run("cd project/out && printf data > a.txt && mv a.txt b.txt && rm b.txt")
        for event in watch:
            print(event.type_, event.path if event.new_path is None else f"{event.path} -> {event.new_path}")
            if event.type_ == "deleted":
                break  # leaving the loop keeps the watch: the next loop goes on after this event
    # Leaving `with` stopped the watch. It keeps its events: a new stream gives those after an id,
    # then the watch's end, whose final state lands in .watch.
    print("after event 2:", [str(e.type_) for e in watch.events(last_event_id="2")])
    print("watch:", watch.watch.status, watch.watch.end_reason)
