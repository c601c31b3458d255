// Diesel schema for both backends (kept by hand in step with migrations/postgres and migrations/sqlite;
// the migration parity test and the row round-trip tests catch drift).

diesel::table! {
    organizations (id) {
        id -> BigInt,
        name -> Text,
        auto_start_queue -> Bool,
        actual_jobs_hours -> Integer,
        report_fields -> Nullable<Text>,
        material_prices -> Nullable<Text>,
        currency -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    users (id) {
        id -> BigInt,
        organization_id -> BigInt,
        email -> Text,
        password_hash -> Nullable<Text>,
        firstname -> Text,
        lastname -> Text,
        company -> Text,
        access_role -> Integer,
        gdpr -> Integer,
        google_sub -> Nullable<Text>,
        balance -> Nullable<Double>,
        monthly_quota -> Nullable<Integer>,
        quota_used -> Integer,
        quota_period -> Nullable<Text>,
        disabled -> Bool,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    sessions (id) {
        id -> BigInt,
        user_id -> Nullable<BigInt>,
        token_hash -> Text,
        gdpr_pending -> Nullable<Text>,
        client_addr -> Nullable<Text>,
        created_at -> Timestamp,
        last_seen_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    login_failures (id) {
        id -> BigInt,
        throttle_key -> Text,
        failed_at -> Timestamp,
    }
}

diesel::table! {
    user_tokens (id) {
        id -> BigInt,
        purpose -> Text,
        token_hash -> Text,
        user_id -> Nullable<BigInt>,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        confirmed_at -> Nullable<Timestamp>,
        used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    api_tokens (id) {
        id -> BigInt,
        user_id -> BigInt,
        name -> Text,
        token_hash -> Text,
        created_at -> Timestamp,
        last_used_at -> Nullable<Timestamp>,
        revoked_at -> Nullable<Timestamp>,
        expires_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    server_secrets (name) {
        name -> Text,
        value -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    workgroups (id) {
        id -> BigInt,
        organization_id -> BigInt,
        name -> Text,
        join_password -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    workgroup_members (id) {
        id -> BigInt,
        workgroup_id -> BigInt,
        user_id -> BigInt,
        rights -> Integer,
        created_at -> Timestamp,
    }
}

diesel::table! {
    printer_types (id) {
        id -> BigInt,
        short_name -> Text,
        description -> Text,
        vendor -> Text,
        industrial -> Bool,
        software_version -> Text,
        printer_parameters -> Text,
        profile -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    printers (id) {
        id -> BigInt,
        organization_id -> BigInt,
        owner_user_id -> Nullable<BigInt>,
        printer_type_id -> Nullable<BigInt>,
        name -> Text,
        snr -> Text,
        host_num -> Text,
        local_ip -> Text,
        vid -> Text,
        pid -> Text,
        mac -> Text,
        agent_version -> Nullable<Text>,
        auth_token_hash -> Nullable<Text>,
        state -> Text,
        percent -> Double,
        temps -> Nullable<Text>,
        target_temps -> Nullable<Text>,
        report -> Nullable<Text>,
        last_error -> Nullable<Text>,
        current_job_id -> Nullable<BigInt>,
        tray_clear -> Bool,
        filaments -> Nullable<Text>,
        camera_watched_until -> Nullable<Timestamp>,
        last_seen_at -> Nullable<Timestamp>,
        next_command_number -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        circuit_id -> Nullable<BigInt>,
        maintenance_note -> Nullable<Text>,
        maintenance_since -> Nullable<Timestamp>,
        maintained_at -> Nullable<Timestamp>,
        maintenance_hours_limit -> Nullable<Double>,
        maintenance_filament_limit_g -> Nullable<Double>,
    }
}

diesel::table! {
    power_circuits (id) {
        id -> BigInt,
        organization_id -> BigInt,
        name -> Text,
        max_heating -> Nullable<Integer>,
        max_downloads -> Nullable<Integer>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    farm_jobs (id) {
        id -> BigInt,
        organization_id -> BigInt,
        user_id -> BigInt,
        file_id -> BigInt,
        target_kind -> Text,
        printer_type_id -> Nullable<BigInt>,
        workgroup_id -> Nullable<BigInt>,
        copies -> Integer,
        material -> Nullable<Text>,
        color_hex -> Nullable<Text>,
        priority -> Integer,
        cancelled_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    farm_job_printers (farm_job_id, printer_id) {
        farm_job_id -> BigInt,
        printer_id -> BigInt,
    }
}

diesel::table! {
    farm_copies (id) {
        id -> BigInt,
        farm_job_id -> BigInt,
        copy_number -> Integer,
        state -> Text,
        job_id -> Nullable<BigInt>,
        attempts -> Integer,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    printer_workgroups (id) {
        id -> BigInt,
        printer_id -> BigInt,
        workgroup_id -> BigInt,
    }
}

diesel::table! {
    registration_codes (id) {
        id -> BigInt,
        code -> Text,
        device_key -> Text,
        agent_info -> Text,
        printer_type_alias -> Nullable<Text>,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        redeemed_by_user_id -> Nullable<BigInt>,
        redeemed_at -> Nullable<Timestamp>,
        printer_id -> Nullable<BigInt>,
        pending_auth_token -> Nullable<Text>,
        delivered_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    printer_shares (id) {
        id -> BigInt,
        printer_id -> BigInt,
        email -> Text,
        user_id -> Nullable<BigInt>,
        role_id -> Integer,
        number_of_prints -> Nullable<Integer>,
        prints_used -> Integer,
        created_by_user_id -> Nullable<BigInt>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    projects (id) {
        id -> BigInt,
        user_id -> BigInt,
        name -> Text,
        color -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    files (id) {
        id -> BigInt,
        user_id -> BigInt,
        organization_id -> BigInt,
        project_id -> Nullable<BigInt>,
        state -> Text,
        filename -> Text,
        kind -> Text,
        size -> BigInt,
        sha256 -> Text,
        storage_key -> Text,
        upload_type_id -> Integer,
        upload_soft_name -> Nullable<Text>,
        printer_type_id -> Nullable<BigInt>,
        slicer -> Nullable<Text>,
        zip -> Bool,
        analysis -> Nullable<Text>,
        slicer_settings -> Nullable<Text>,
        picture -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    counters (name) {
        name -> Text,
        value -> BigInt,
    }
}

diesel::table! {
    jobs (id) {
        id -> BigInt,
        organization_id -> BigInt,
        printer_id -> BigInt,
        file_id -> BigInt,
        user_id -> BigInt,
        share_id -> Nullable<BigInt>,
        status_id -> Integer,
        change_seq -> BigInt,
        notes -> Nullable<Text>,
        percent -> Double,
        print_time -> Integer,
        printing_duration -> Integer,
        material_type -> Text,
        layer_height -> Double,
        color_numbers -> Integer,
        extruders -> Text,
        weight -> Double,
        heated_bed -> Bool,
        heated_bed_temperature -> Integer,
        raft -> Bool,
        supports -> Bool,
        file_cost -> Nullable<Double>,
        cost -> Nullable<Double>,
        charged -> Bool,
        cancel_reason -> Nullable<Text>,
        cancel_details -> Nullable<Text>,
        cancelled_by_user_id -> Nullable<BigInt>,
        started_by_user_id -> Nullable<BigInt>,
        feedback -> Nullable<Text>,
        created_at -> Timestamp,
        started_at -> Nullable<Timestamp>,
        ended_at -> Nullable<Timestamp>,
        updated_at -> Timestamp,
        download_token_hash -> Nullable<Text>,
        cancel_source -> Nullable<Text>,
        priority -> Integer,
        farm_copy_id -> Nullable<BigInt>,
    }
}

diesel::table! {
    printer_commands (id) {
        id -> BigInt,
        printer_id -> BigInt,
        number -> BigInt,
        command -> Text,
        payload -> Nullable<Text>,
        job_id -> Nullable<BigInt>,
        status -> Text,
        result -> Nullable<Text>,
        created_at -> Timestamp,
        sent_at -> Nullable<Timestamp>,
        finished_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    camera_tokens (id) {
        id -> BigInt,
        token_hash -> Text,
        user_id -> BigInt,
        printer_id -> Nullable<BigInt>,
        created_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    camera_frames (printer_id) {
        printer_id -> BigInt,
        jpeg -> Binary,
        received_at -> Timestamp,
    }
}

diesel::table! {
    slice_jobs (id) {
        id -> BigInt,
        uuid -> Text,
        user_id -> BigInt,
        file_id -> BigInt,
        output_file_id -> Nullable<BigInt>,
        slicer_id -> Integer,
        profile -> Text,
        printer_id -> Nullable<BigInt>,
        start_print -> Bool,
        status -> Text,
        error -> Nullable<Text>,
        stderr -> Nullable<Text>,
        attempts -> Integer,
        lease_owner -> Nullable<Text>,
        lease_until -> Nullable<Timestamp>,
        print_job_id -> Nullable<BigInt>,
        created_at -> Timestamp,
        started_at -> Nullable<Timestamp>,
        finished_at -> Nullable<Timestamp>,
        farm_request -> Nullable<Text>,
        farm_job_id -> Nullable<BigInt>,
    }
}

diesel::table! {
    upload_ids (id) {
        id -> BigInt,
        upload_id -> Text,
        user_id -> BigInt,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
        file_id -> Nullable<BigInt>,
        reserved_file_id -> Nullable<BigInt>,
    }
}

diesel::table! {
    quote_usage (id) {
        id -> BigInt,
        user_id -> BigInt,
        created_at -> Timestamp,
    }
}

diesel::table! {
    quotes (id) {
        id -> BigInt,
        uuid -> Text,
        user_id -> BigInt,
        file_id -> BigInt,
        slice_job_id -> Nullable<BigInt>,
        printer_config -> Text,
        quote_config -> Text,
        status -> Text,
        error -> Nullable<Text>,
        gcode_file_id -> Nullable<BigInt>,
        estimated_time_seconds -> Nullable<BigInt>,
        filament_used_mm -> Nullable<Double>,
        filament_weight -> Nullable<Double>,
        filament_cost -> Nullable<Double>,
        time_cost -> Nullable<Double>,
        total_price -> Nullable<Double>,
        currency -> Text,
        created_at -> Timestamp,
        finished_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    demo_farm (id) {
        id -> Integer,
        user_id -> BigInt,
        organization_id -> BigInt,
        created_at -> Timestamp,
    }
}

diesel::joinable!(users -> organizations (organization_id));
diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(user_tokens -> users (user_id));
diesel::joinable!(api_tokens -> users (user_id));
diesel::joinable!(workgroups -> organizations (organization_id));
diesel::joinable!(workgroup_members -> workgroups (workgroup_id));
diesel::joinable!(workgroup_members -> users (user_id));
diesel::joinable!(printers -> organizations (organization_id));
diesel::joinable!(printers -> users (owner_user_id));
diesel::joinable!(printers -> printer_types (printer_type_id));
diesel::joinable!(printer_workgroups -> printers (printer_id));
diesel::joinable!(printer_workgroups -> workgroups (workgroup_id));
diesel::joinable!(registration_codes -> users (redeemed_by_user_id));
diesel::joinable!(registration_codes -> printers (printer_id));
diesel::joinable!(printer_shares -> printers (printer_id));
diesel::joinable!(projects -> users (user_id));
diesel::joinable!(files -> users (user_id));
diesel::joinable!(files -> organizations (organization_id));
diesel::joinable!(files -> projects (project_id));
diesel::joinable!(files -> printer_types (printer_type_id));
diesel::joinable!(jobs -> organizations (organization_id));
diesel::joinable!(jobs -> printers (printer_id));
diesel::joinable!(jobs -> files (file_id));
diesel::joinable!(jobs -> printer_shares (share_id));
diesel::joinable!(printer_commands -> printers (printer_id));
diesel::joinable!(printer_commands -> jobs (job_id));
diesel::joinable!(camera_tokens -> users (user_id));
diesel::joinable!(camera_tokens -> printers (printer_id));
diesel::joinable!(slice_jobs -> users (user_id));
diesel::joinable!(slice_jobs -> printers (printer_id));
diesel::joinable!(slice_jobs -> jobs (print_job_id));
diesel::joinable!(upload_ids -> users (user_id));
diesel::joinable!(upload_ids -> files (file_id));
diesel::joinable!(quotes -> users (user_id));
diesel::joinable!(quote_usage -> users (user_id));
diesel::joinable!(quotes -> slice_jobs (slice_job_id));
diesel::joinable!(farm_copies -> farm_jobs (farm_job_id));
diesel::joinable!(farm_job_printers -> farm_jobs (farm_job_id));
diesel::joinable!(farm_job_printers -> printers (printer_id));
diesel::joinable!(printers -> power_circuits (circuit_id));
diesel::joinable!(jobs -> farm_copies (farm_copy_id));

diesel::allow_tables_to_appear_in_same_query!(
    server_secrets,
    demo_farm,
    organizations,
    users,
    sessions,
    login_failures,
    user_tokens,
    api_tokens,
    workgroups,
    workgroup_members,
    printer_types,
    printers,
    printer_workgroups,
    registration_codes,
    printer_shares,
    projects,
    files,
    counters,
    jobs,
    printer_commands,
    camera_tokens,
    camera_frames,
    slice_jobs,
    upload_ids,
    quotes,
    quote_usage,
    power_circuits,
    farm_jobs,
    farm_job_printers,
    farm_copies,
);
